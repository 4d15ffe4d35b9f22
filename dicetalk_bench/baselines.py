"""Reference rows built from the test clips themselves: what a method must beat, and what it cannot exceed.

Baselines (one video per test clip, written like a method's generated videos, 25 fps with 16 kHz audio):

- ``static``: the clip's first frame held still for the clip's length, with the clip's own audio. It has perfect
  identity and image quality and no motion, so it shows how much of a method's Sync and emotion scores come from
  moving at all.
- ``shuffled-audio``: each clip's real frames with another test clip's audio (a seeded derangement: no clip keeps
  its own audio). Lip sync is broken while everything visual is real.
- ``shifted-audio``: each clip's real frames with its own audio delayed by :data:`SHIFT_FRAMES` frames (200 ms):
  SyncNet's offset search should find the shift, and Sync-C at the found offset stays near the real video's.

Audio that is shorter than the video is padded with silence and longer audio is cut (the rule is recorded).
The ceiling row (real video scored against itself) is built by the evaluate command, not here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dicetalk_bench import media
from dicetalk_bench.errors import ItemFailure, SetupError
from dicetalk_bench.fileutil import atomic_path

logger = logging.getLogger(__name__)

BASELINES: tuple[str, ...] = ("static", "shuffled-audio", "shifted-audio")
SHIFT_FRAMES = 5
FPS = 25.0
AUDIO_RATE = 16000
AUDIO_RULE = "audio padded with silence or cut to the video's length"


def static_frames(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, H, W, 3): the first frame repeated T times."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or len(frames) == 0:
        raise ValueError(f"expected (T, H, W, 3) frames with T >= 1, got shape {frames.shape}")
    return np.broadcast_to(frames[:1], frames.shape).copy()


def fit_audio(audio: np.ndarray, n_samples: int) -> np.ndarray:
    """(S,) float32 -> (n_samples,): cut, or padded at the end with silence."""
    audio = np.asarray(audio, dtype=np.float32).ravel()
    if len(audio) >= n_samples:
        return audio[:n_samples].copy()
    return np.concatenate([audio, np.zeros(n_samples - len(audio), np.float32)])


def shift_audio(audio: np.ndarray, shift_frames: int = SHIFT_FRAMES, fps: float = FPS,
                rate: int = AUDIO_RATE) -> np.ndarray:
    """Delay (S,) audio by ``shift_frames`` video frames: silence in front, the same length S out."""
    audio = np.asarray(audio, dtype=np.float32).ravel()
    n = int(round(shift_frames * rate / fps))
    if n < 0:
        raise ValueError(f"shift_frames must be >= 0, got {shift_frames}")
    return np.concatenate([np.zeros(min(n, len(audio)), np.float32), audio[: max(len(audio) - n, 0)]])


def derangement(clip_ids: Sequence[str], seed: int) -> dict[str, str]:
    """A seeded permutation of ``clip_ids`` with no fixed point: clip id -> the clip whose audio it takes.

    Sattolo's algorithm (a uniform random cyclic permutation), so no clip keeps its own audio. Needs >= 2 clips.
    """
    ids = sorted(clip_ids)
    if len(ids) < 2:
        raise ValueError(f"shuffled-audio needs at least 2 test clips, got {len(ids)}")
    rng = np.random.default_rng(seed)
    order = list(range(len(ids)))
    for i in range(len(ids) - 1, 0, -1):
        j = int(rng.integers(0, i))
        order[i], order[j] = order[j], order[i]
    return {ids[i]: ids[order[i]] for i in range(len(ids))}


def build_baseline(kind: str, clips: Mapping[str, Path], out_dir: str | Path, *, seed: int = 0,
                   ) -> tuple[Path, dict[str, Any]]:
    """Write the ``kind`` baseline of ``clips`` (clip id -> real 25 fps video with audio) into ``out_dir``.

    Returns (folder of ``<clip_id>.mp4``, record for the provenance: kind, rule, pairing, counts, failures).
    A clip whose video or audio cannot be read is recorded in ``failures`` (with its kind) and skipped; a video
    already present from an earlier run with the same settings is kept (files are written atomically).
    """
    if kind not in BASELINES:
        raise ValueError(f"unknown baseline {kind!r}; expected one of {', '.join(BASELINES)}")
    out = Path(out_dir)
    settings = {"kind": kind, "seed": seed, "shift_frames": SHIFT_FRAMES if kind == "shifted-audio" else 0,
                "audio_rule": AUDIO_RULE, "fps": FPS, "audio_rate": AUDIO_RATE}
    marker = out / "_baseline.json"
    if marker.is_file():
        earlier = json.loads(marker.read_text())
        if earlier != settings:
            raise SetupError(f"{out} holds a baseline made with other settings ({earlier}); delete the folder or "
                             f"choose another output folder")
    else:
        with atomic_path(marker) as tmp:
            Path(tmp).write_text(json.dumps(settings, sort_keys=True))
    pairing = derangement(list(clips), seed) if kind == "shuffled-audio" else {c: c for c in clips}
    failures: dict[str, str] = {}
    failure_kinds: dict[str, str] = {}
    n_written = n_reused = 0
    for clip_id in sorted(clips):
        target = out / f"{clip_id}.mp4"
        if target.is_file():
            n_reused += 1
            continue
        try:
            video = media.read_video(clips[clip_id], fps=FPS)
            audio = media.read_audio(clips[pairing[clip_id]], AUDIO_RATE)
        except media.MissingStreamError as exc:
            failures[clip_id], failure_kinds[clip_id] = str(exc), "no-audio"
            continue
        except (media.MediaError, ItemFailure) as exc:
            failures[clip_id], failure_kinds[clip_id] = str(exc), getattr(exc, "kind", "unreadable-video")
            continue
        n_samples = int(round(len(video.frames) / FPS * AUDIO_RATE))
        frames = static_frames(video.frames) if kind == "static" else video.frames
        sound = fit_audio(audio, n_samples)
        if kind == "shifted-audio":
            sound = shift_audio(sound)
        media.write_video(target, frames, FPS, audio=sound, audio_rate=AUDIO_RATE)
        n_written += 1
    if failures:
        logger.warning("%s baseline: %d of %d clips failed (first: %s)", kind, len(failures), len(clips),
                       next(iter(failures.items())))
    record = {**settings, "n_clips": len(clips), "n_written": n_written, "n_reused": n_reused,
              "failures": failures, "failure_kinds": failure_kinds}
    if kind == "shuffled-audio":
        record["audio_from"] = pairing
    return out, record
