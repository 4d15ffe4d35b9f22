"""List a raw MEAD tree into clips, by file names only (nothing is decoded here).

Layout (several public MEAD loaders glob these paths)::

    {root}/{ACTOR}/video/{view}/{emotion}/level_{n}/{NNN}.mp4
    {root}/{ACTOR}/audio/{emotion}/level_{n}/{NNN}.m4a     # no view: one audio per utterance, shared by 7 views

Rules: actors are ``M`` / ``W`` + 3 digits; 7 views; 8 emotions; levels 1-3 but neutral only has ``level_1``;
sentence numbers are 3 digits and have gaps (some ``disgusted/level_3`` folders start at 028), so we list
files and never enumerate numbers. Anything that fits no rule is returned as an :class:`UnexpectedFile`
with the reason; it is never guessed at. Names starting with ``.`` are ignored (file-system litter).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Sequence

from dicetalk_bench.datasets import MEAD_EMOTIONS, MEAD_LEVELS, MEAD_TEST_SPEAKERS, MEAD_VIEWS

from .manifest import ClipSource, Discovery, DiscoveryError, UnexpectedFile

log = logging.getLogger(__name__)

#: The 7 MEAD camera views.
VIEWS: tuple[str, ...] = MEAD_VIEWS
#: The 8 MEAD emotions; same names as the DICE-Talk emotion priors (toto222/DICE-Talk@a8a92b1 examples/emo).
EMOTIONS: tuple[str, ...] = MEAD_EMOTIONS
LEVELS: tuple[int, ...] = MEAD_LEVELS
#: Test identities of the split used by EAT (yuangan/EAT_code@95beccb test_mead.py) and later works.
EAT_TEST_SPEAKERS: tuple[str, ...] = MEAD_TEST_SPEAKERS

_ACTOR = re.compile(r"^[MW]\d{3}$")
_LEVEL = re.compile(r"^level_(\d)$")
_SENTENCE = re.compile(r"^(\d{3})\.(mp4|m4a)$")


def mead_split(speaker: str, test_speakers: Sequence[str] = EAT_TEST_SPEAKERS) -> str:
    """``"test"`` for the held-out identities, else ``"train"``."""
    return "test" if speaker in test_speakers else "train"


def _children(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _check_level(emotion: str, level_dir: Path, unexpected: list[UnexpectedFile]) -> int | None:
    m = _LEVEL.match(level_dir.name)
    if not level_dir.is_dir() or not m or int(m.group(1)) not in LEVELS:
        unexpected.append(UnexpectedFile(level_dir, "expected a folder level_1, level_2 or level_3"))
        return None
    level = int(m.group(1))
    if emotion == "neutral" and level != 1:
        unexpected.append(UnexpectedFile(level_dir, "MEAD neutral has only level_1"))
        return None
    return level


def _list_utterances(
    emotion_root: Path, suffix: str, unexpected: list[UnexpectedFile]
) -> dict[tuple[str, int, str], Path]:
    """``{(emotion, level, sentence): path}`` below ``emotion_root`` (a ``video/{view}`` or ``audio`` folder)."""
    found: dict[tuple[str, int, str], Path] = {}
    for emo_dir in _children(emotion_root):
        if not emo_dir.is_dir() or emo_dir.name not in EMOTIONS:
            unexpected.append(UnexpectedFile(emo_dir, f"expected an emotion folder, one of {list(EMOTIONS)}"))
            continue
        for level_dir in _children(emo_dir):
            level = _check_level(emo_dir.name, level_dir, unexpected)
            if level is None:
                continue
            for f in _children(level_dir):
                m = _SENTENCE.match(f.name)
                if not f.is_file() or not m or m.group(2) != suffix:
                    unexpected.append(UnexpectedFile(f, f"expected a file NNN.{suffix} (3-digit sentence number)"))
                    continue
                found[(emo_dir.name, level, m.group(1))] = f
    return found


def discover_mead(root: str | Path, test_speakers: Sequence[str] = EAT_TEST_SPEAKERS) -> Discovery:
    """List every MEAD clip (one per actor x view x emotion x level x sentence) under ``root``.

    Audio is matched by (actor, emotion, level, sentence) and shared by all views through ``audio_id``.
    A video with no audio file gets ``audio_path=None`` (the pipeline then uses the video's own audio
    stream and the clip's own ``audio_id``); an audio file with no video in any view is reported.
    """
    root = Path(root)
    if not root.is_dir():
        raise DiscoveryError(f"MEAD root {root} is not a folder; pass --root pointing at the folder of actors (M003, W009, ...)")
    clips: list[ClipSource] = []
    unexpected: list[UnexpectedFile] = []
    for actor_dir in _children(root):
        if not actor_dir.is_dir() or not _ACTOR.match(actor_dir.name):
            unexpected.append(UnexpectedFile(actor_dir, "expected an actor folder named M### or W###"))
            continue
        actor = actor_dir.name
        videos: dict[str, dict[tuple[str, int, str], Path]] = {}
        audio: dict[tuple[str, int, str], Path] = {}
        for part in _children(actor_dir):
            if part.name == "video" and part.is_dir():
                for view_dir in _children(part):
                    if not view_dir.is_dir() or view_dir.name not in VIEWS:
                        unexpected.append(UnexpectedFile(view_dir, f"expected a view folder, one of {list(VIEWS)}"))
                        continue
                    videos[view_dir.name] = _list_utterances(view_dir, "mp4", unexpected)
            elif part.name == "audio" and part.is_dir():
                audio = _list_utterances(part, "m4a", unexpected)
            else:
                unexpected.append(UnexpectedFile(part, "expected only 'video' and 'audio' folders in an actor folder"))
        used_audio: set[tuple[str, int, str]] = set()
        for view in sorted(videos, key=VIEWS.index):
            for (emotion, level, sentence), vpath in sorted(videos[view].items()):
                apath = audio.get((emotion, level, sentence))
                if apath is not None:
                    used_audio.add((emotion, level, sentence))
                clip_id = f"mead/{actor}/{view}/{emotion}/level_{level}/{sentence}"
                audio_id = f"mead/{actor}/{emotion}/level_{level}/{sentence}" if apath is not None else clip_id
                clips.append(
                    ClipSource(
                        clip_id=clip_id, dataset="mead", speaker=actor, split=mead_split(actor, test_speakers),
                        video_path=vpath, audio_path=apath, audio_id=audio_id, view=view, emotion=emotion,
                        level=level, sentence=sentence,
                    )
                )
        for key in sorted(set(audio) - used_audio):
            unexpected.append(UnexpectedFile(audio[key], "audio file with no matching video in any view"))
    for u in unexpected:
        log.warning("MEAD: unexpected %s: %s", u.path, u.reason)
    return Discovery(tuple(clips), tuple(unexpected))
