"""Write the demo HDTF folder: full source videos plus the five upstream annotation files per group.

Layout and formats follow MRzzm/HDTF@bbde889 ``HDTF_dataset/``; every column is
space-separated and every line ends with ``\\n``::

    {G}_{name}.mp4                          the source video (H.264 + AAC), as the download scripts name it
    {G}_video_url.txt      name url          (WDA_video_url.txt starts with a UTF-8 BOM, as distributed)
    {G}_resolution.txt     name.mp4 height
    {G}_annotion_time.txt  name.mp4 mm:ss-mm:ss [mm:ss-mm:ss ...]   -> clips name_0, name_1, ...
    {G}_crop_wh.txt        name_k.mp4 min_width width min_height height   (pixels at that resolution)
    {G}_crop_ratio.txt     name_k.mp4 zoom

The URLs are placeholders in YouTube's format (the demo videos are not on YouTube). ``crop_wh`` is the
square around the union of the rendered head boxes over the clip; ``crop_ratio`` is 1.2 or 1.0.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dicetalk_bench import media
from dicetalk_bench.fileutil import atomic_write_bytes

from .identities import HDTF_IDENTITIES
from .synth import DemoContext, array_digest, make_take, view_rng

log = logging.getLogger(__name__)

GROUPS: tuple[str, ...] = ("RD", "WDA", "WRA")
ANNOTATION_KINDS: tuple[str, ...] = ("video_url", "resolution", "annotion_time", "crop_wh", "crop_ratio")
#: Files that start with a UTF-8 BOM upstream.
BOM_FILES: frozenset[str] = frozenset({"WDA_video_url.txt"})


@dataclass(frozen=True)
class HdtfSpec:
    """Source video size (W, H), fps, length (s), audio rate, encoder settings and the clip time ranges (s)."""

    size_wh: tuple[int, int]
    fps: float
    video_s: float
    audio_rate: int
    crf: int
    preset: str
    clips_s: tuple[tuple[int, int], ...]     # whole seconds: the annotation format is mm:ss
    videos: tuple[tuple[str, str], ...] = tuple(HDTF_IDENTITIES)


def mmss(seconds: int) -> str:
    """Whole seconds -> ``mm:ss``."""
    if seconds < 0:
        raise ValueError(f"negative time {seconds}")
    return f"{seconds // 60:02d}:{seconds % 60:02d}"


def placeholder_url(group: str, name: str) -> str:
    """A YouTube-format URL whose 11-character id is derived from the name (not a real demo upload)."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    digest = hashlib.sha256(f"dicetalk_bench demo {group}_{name}".encode()).digest()
    return "https://www.youtube.com/watch?v=" + "".join(alphabet[b % 64] for b in digest[:11])


def crop_square(boxes: np.ndarray, size_wh: tuple[int, int]) -> tuple[int, int, int, int]:
    """(min_width, width, min_height, height): the square around the union of (T, 4) xyxy boxes, in the frame."""
    width, height = size_wh
    x0, y0 = float(boxes[:, 0].min()), float(boxes[:, 1].min())
    x1, y1 = float(boxes[:, 2].max()), float(boxes[:, 3].max())
    side = int(round(min(max(x1 - x0, y1 - y0), width, height)))
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    left = int(round(min(max(cx - side / 2, 0), width - side)))
    top = int(round(min(max(cy - side / 2, 0), height - side)))
    return left, side, top, side


def _write_text(path: Path, lines: list[str], bom: bool) -> None:
    text = "".join(line + "\n" for line in lines)
    atomic_write_bytes(path, (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))


def build_hdtf(root: Path, spec: HdtfSpec, ctx: DemoContext) -> list[dict]:
    """Write the source videos and annotation files under ``root`` (the ``hdtf`` folder)."""
    if spec.clips_s[-1][1] > spec.video_s:
        raise ValueError(f"clip range {spec.clips_s[-1]} ends after the {spec.video_s} s source video")
    width, height = spec.size_wh
    lines: dict[tuple[str, str], list[str]] = {(g, k): [] for g in GROUPS for k in ANNOTATION_KINDS}
    records = []
    for v, (group, name) in enumerate(spec.videos):
        ident = HDTF_IDENTITIES[(group, name)]
        # talking-show speech: neutral voice; a second video of the same person says different sentences
        take = make_take(ctx, ident, "neutral", 1, ("hdtf", group, name), ("hdtf", group, name),
                         duration_s=spec.video_s, fps=spec.fps, size_wh=spec.size_wh, audio_rate=spec.audio_rate,
                         drift_strength=1.5)
        frames, boxes = take.renderer.render(take.openness, spec.fps, spec.size_wh, take.drift,
                                             view_rng(ctx, ("hdtf", group, name), "front"))
        rel = f"{group}_{name}.mp4"
        media.write_video(root / rel, frames, spec.fps, audio=take.audio, audio_rate=spec.audio_rate,
                          crf=spec.crf, preset=spec.preset)
        lines[(group, "video_url")].append(f"{name} {placeholder_url(group, name)}")
        lines[(group, "resolution")].append(f"{name}.mp4 {height}")
        lines[(group, "annotion_time")].append(
            f"{name}.mp4 " + " ".join(f"{mmss(a)}-{mmss(b)}" for a, b in spec.clips_s))
        clips = []
        for k, (a, b) in enumerate(spec.clips_s):
            sel = boxes[int(a * spec.fps): int(b * spec.fps)]
            wh = crop_square(sel, spec.size_wh)
            ratio = "1.2" if (v + k) % 2 == 0 else "1.0"
            lines[(group, "crop_wh")].append(f"{name}_{k}.mp4 {wh[0]} {wh[1]} {wh[2]} {wh[3]}")
            lines[(group, "crop_ratio")].append(f"{name}_{k}.mp4 {ratio}")
            clips.append({"clip": f"{name}_{k}.mp4", "start_s": a, "end_s": b, "crop_wh": list(wh),
                          "crop_ratio": float(ratio)})
        records.append({"group": group, "name": name, "identity": ident.actor, "file": rel,
                        "frames_sha256": array_digest(frames), "audio_sha256": array_digest(take.audio),
                        "n_frames": int(len(frames)), "clips": clips, "speech": take.info})
        log.debug("HDTF video %s written", rel)
    groups_used = sorted({g for g, _ in spec.videos})
    for g in groups_used:
        for kind in ANNOTATION_KINDS:
            fname = f"{g}_{kind}.txt"
            _write_text(root / fname, lines[(g, kind)], bom=fname in BOM_FILES)
    return records
