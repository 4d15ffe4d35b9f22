"""The input side of our own MEAD emotion classifier: frame sampling, region pixel features and per-speaker means.

Pure functions on arrays (no file access); the protocol is described in :mod:`.emotion_train`. Shapes: face crops
(T, S, S, 3) uint8 RGB -> features (T, F) float32, F = regions x region W x region H x 3.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


# Face-box coordinates (x0, y0, x1, y1), box = [0, 1]^2. Placed on BlazeFace boxes, whose top edge is near the brows
# and bottom edge near the chin: the brow band covers brows and upper eyelids (AU1/2/4/5), the mouth band the lips
# and mouth corners (AU12/15/20/25/26).
REGIONS: Mapping[str, tuple[float, float, float, float]] = {
    "brows": (0.12, 0.08, 0.88, 0.42),
    "mouth": (0.20, 0.60, 0.80, 0.98),
}


@dataclasses.dataclass(frozen=True)
class OwnEmotionProtocol:
    """The input side of the protocol: how frames become features."""

    crop_scale: float = 1.2                 # square crop side / larger face-box side (Emo-Acc's default crop)
    input_size: int = 64                    # crop side in pixels before the regions are cut
    region_size: tuple[int, int] = (16, 8)  # (W, H) of each region after resizing
    frames_per_video: int = 8
    regions: tuple[tuple[str, tuple[float, float, float, float]], ...] = tuple(REGIONS.items())

    def to_json(self) -> dict[str, Any]:
        return {"crop_scale": self.crop_scale, "input_size": self.input_size, "region_size": list(self.region_size),
                "frames_per_video": self.frames_per_video,
                "regions": {name: list(rect) for name, rect in self.regions}}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> OwnEmotionProtocol:
        return cls(crop_scale=float(d["crop_scale"]), input_size=int(d["input_size"]),
                   region_size=(int(d["region_size"][0]), int(d["region_size"][1])),
                   frames_per_video=int(d["frames_per_video"]),
                   regions=tuple((str(k), tuple(float(v) for v in r)) for k, r in d["regions"].items()))

    @property
    def n_features(self) -> int:
        return len(self.regions) * self.region_size[0] * self.region_size[1] * 3


def sample_frame_indices(n_frames: int, k: int) -> np.ndarray:
    """``k`` evenly spaced frame indices in [0, n_frames), first and last frame left out (fewer frames: all)."""
    if n_frames <= 0:
        raise ValueError(f"cannot sample frames from a video of {n_frames} frames")
    if k <= 0:
        raise ValueError(f"frames_per_video must be positive, got {k}")
    if n_frames <= k:
        return np.arange(n_frames)
    return np.round(np.linspace(0, n_frames - 1, k + 2)[1:-1]).astype(np.int64)


def _region_pixels(rect: Sequence[float], crop_scale: float, size: int) -> tuple[int, int, int, int]:
    """Face-box rectangle -> pixel rectangle of a ``size`` crop whose side is ``crop_scale`` x the box side."""
    to_px = [int(round((0.5 + (v - 0.5) / crop_scale) * size)) for v in rect]
    x0, y0, x1, y1 = (min(max(v, 0), size) for v in to_px)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"region {tuple(rect)} is empty in a {size}px crop with crop_scale {crop_scale}")
    return x0, y0, x1, y1


def region_features(crops: np.ndarray, protocol: OwnEmotionProtocol) -> np.ndarray:
    """(T, S, S, 3) uint8 RGB square face crops -> (T, F) float32 features (regions resized, / 255, concatenated)."""
    import cv2

    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8 or crops.shape[1] != crops.shape[2]:
        raise ValueError(f"expected (T, S, S, 3) uint8 RGB square face crops, got {crops.shape} {crops.dtype}")
    size = protocol.input_size
    rects = [_region_pixels(r, protocol.crop_scale, size) for _, r in protocol.regions]
    out = np.empty((len(crops), protocol.n_features), np.float32)
    for t, crop in enumerate(crops):
        if crop.shape[0] != size:
            crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        parts = [cv2.resize(crop[y0:y1, x0:x1], protocol.region_size, interpolation=cv2.INTER_AREA).ravel()
                 for x0, y0, x1, y1 in rects]
        out[t] = np.concatenate(parts).astype(np.float32) / 255.0
    return out


def speaker_means(features: Mapping[str, np.ndarray], speakers: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Per-speaker mean feature over all frames of all the speaker's videos: {video: (T, F)} -> {speaker: (F,)}."""
    groups: dict[str, list[np.ndarray]] = {}
    for vid, f in features.items():
        if vid not in speakers:
            raise ValueError(f"video {vid!r} has no speaker; per-speaker normalisation needs one for every video")
        groups.setdefault(speakers[vid], []).append(np.asarray(f, np.float64))
    return {spk: np.concatenate(fs).mean(axis=0) for spk, fs in groups.items()}


_SPEAKER_RE = re.compile(r"^[mw]\d{3}$")


def speaker_from_clip_id(clip_id: str) -> str | None:
    """MEAD speaker named in a clip id (a path part or ``_``/``-``-separated token like ``M003``), else None."""
    found = {tok.upper() for tok in re.split(r"[/_\-.\s]+", clip_id.lower()) if _SPEAKER_RE.match(tok)}
    return found.pop() if len(found) == 1 else None
