"""Write the demo MEAD tree in the raw MEAD layout::

    mead/{actor}/video/{view}/{emotion}/level_{n}/{nnn}.mp4   H.264 + AAC, the take seen by one camera
    mead/{actor}/audio/{emotion}/level_{n}/{nnn}.m4a          AAC, one per take, shared by every view

Neutral exists only at level_1. Sentence numbers have gaps (e.g. level_3 uses 028, as some real MEAD
folders start there), so loaders must list files rather than count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from dicetalk_bench import media

from .emotions import EMOTIONS
from .identities import MEAD_IDENTITIES
from .synth import DemoContext, array_digest, make_take, view_rng

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeadTake:
    actor: str
    emotion: str
    level: int
    sentence: str                  # 3 digits
    views: tuple[str, ...] = ("front",)


@dataclass(frozen=True)
class MeadSpec:
    """Frame size (W, H), frame rate, clip length (s), audio rate (Hz), encoder settings and the takes."""

    size_wh: tuple[int, int]
    fps: float
    clip_s: float
    audio_rate: int
    crf: int
    preset: str
    takes: tuple[MeadTake, ...]


def plan_takes(actors: tuple[str, ...], sentences: dict[int, tuple[str, ...]], neutral: tuple[str, ...],
               extra_views: dict[str, tuple[str, ...]] | None = None, extra_view_levels: tuple[int, ...] = (3,)
               ) -> tuple[MeadTake, ...]:
    """Every actor x emotion x level with the given sentence numbers; ``extra_views[actor]`` adds cameras
    to that actor's neutral takes and its takes at ``extra_view_levels``."""
    extra_views = extra_views or {}
    takes = []
    for actor in actors:
        if actor not in MEAD_IDENTITIES:
            raise ValueError(f"unknown demo MEAD actor {actor!r}; known: {sorted(MEAD_IDENTITIES)}")
        more = extra_views.get(actor, ())
        for emotion in EMOTIONS:
            levels = {1: neutral} if emotion == "neutral" else sentences
            for level, numbers in sorted(levels.items()):
                views = ("front",) + more if (emotion == "neutral" or level in extra_view_levels) else ("front",)
                takes.extend(MeadTake(actor, emotion, level, n, views) for n in numbers)
    return tuple(takes)


def build_mead(root: Path, spec: MeadSpec, ctx: DemoContext) -> list[dict]:
    """Write every take of ``spec`` under ``root`` (the ``mead`` folder); returns one record per take."""
    records = []
    for i, t in enumerate(spec.takes):
        ident = MEAD_IDENTITIES[t.actor]
        take = make_take(ctx, ident, t.emotion, t.level, ("mead", t.emotion, t.level, t.sentence),
                         ("mead", t.actor, t.emotion, t.level, t.sentence), duration_s=spec.clip_s, fps=spec.fps,
                         size_wh=spec.size_wh, audio_rate=spec.audio_rate)
        audio_rel = Path(t.actor, "audio", t.emotion, f"level_{t.level}", f"{t.sentence}.m4a")
        media.write_audio(root / audio_rel, take.audio, spec.audio_rate)
        videos = {}
        for view in t.views:
            frames, boxes = take.renderer.render(take.openness, spec.fps, spec.size_wh, take.drift,
                                                 view_rng(ctx, ("mead", t.actor, t.emotion, t.level, t.sentence),
                                                          view), view=view)
            rel = Path(t.actor, "video", view, t.emotion, f"level_{t.level}", f"{t.sentence}.mp4")
            media.write_video(root / rel, frames, spec.fps, audio=take.audio, audio_rate=spec.audio_rate,
                              crf=spec.crf, preset=spec.preset)
            videos[view] = {"file": rel.as_posix(), "frames_sha256": array_digest(frames),
                            "n_frames": int(len(frames)),
                            "mean_head_box_xyxy": [round(float(v), 1) for v in boxes.mean(axis=0)]}
        records.append({"actor": t.actor, "split": ident.split, "emotion": t.emotion, "level": t.level,
                        "sentence": t.sentence, "audio": audio_rel.as_posix(),
                        "audio_sha256": array_digest(take.audio), "videos": videos, "speech": take.info})
        log.debug("MEAD take %d/%d: %s %s level_%d %s", i + 1, len(spec.takes), t.actor, t.emotion, t.level,
                  t.sentence)
    return records
