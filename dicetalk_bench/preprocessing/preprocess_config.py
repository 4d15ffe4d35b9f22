"""The preprocessing settings: :class:`PreprocessConfig`, the hashes of the parts that change the outputs, and the
checks that refuse settings which would make every clip fail.

A record whose config hash differs from the run's is redone on a rerun; settings that change only speed
(``frame_buffer_mb``, ``retain_freed_memory``, ``whisper_batch``) are left out of the hashes.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from dicetalk_bench.config import config_hash, to_dict

from .audio_features import AudioConfig
from .crop import CropConfig
from .faces import FaceTrackConfig
from .manifest import PREPROCESSING_VERSION


class PipelineError(RuntimeError):
    """The run as a whole cannot proceed (e.g. the output folder is not writable)."""


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that changes the outputs. ``min_face_coverage``: fraction of detection frames that must
    contain the tracked face; ``crf`` / ``preset``: libx264 settings of the output clips; ``fan``: add FAN
    68-point landmarks (their weights, ``fan-2d`` and ``s3fd``, are then required up front); ``write_ipc``: build ``features.arrow`` after the run;
    ``retain_freed_memory``: keep freed frame memory in each process for the next clip
    (:mod:`dicetalk_bench.allocator`; speed only, not hashed, like ``frame_buffer_mb``)."""

    fps: float = 25.0
    sample_rate: int = 16_000
    faces: FaceTrackConfig = field(default_factory=FaceTrackConfig)
    crop: CropConfig = field(default_factory=CropConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    min_face_coverage: float = 0.8
    crf: int = 18
    preset: str = "medium"
    chunk_frames: int = 32
    fan: bool = False
    hash_sources: bool = True
    write_ipc: bool = True
    frame_buffer_mb: float = 1024.0
    retain_freed_memory: bool = True


def video_config_hash(cfg: PreprocessConfig) -> str:
    """Hash of the settings that change the video outputs."""
    d = to_dict(cfg)
    part = {k: d[k] for k in ("fps", "sample_rate", "faces", "crop", "min_face_coverage", "crf", "preset", "fan")}
    if part["faces"].get("box_source") == "blazeface":  # the default provider hashes as before it was a setting
        part["faces"] = {k: v for k, v in part["faces"].items() if k != "box_source"}
    return config_hash(part | {"version": PREPROCESSING_VERSION})


def audio_config_hash(cfg: PreprocessConfig, whisper_sha256: str) -> str:
    """Hash of the settings that change the audio features (including the encoder's sha256)."""
    a = to_dict(cfg.audio)
    a.pop("whisper_batch", None)
    a.pop("whisper", None)  # the spec is replaced by the hash of what it resolved to
    return config_hash({"audio": a, "fps": cfg.fps, "whisper_sha256": whisper_sha256, "version": PREPROCESSING_VERSION})


def with_overrides(cfg: PreprocessConfig, **changes: Any) -> PreprocessConfig:
    """``dataclasses.replace`` for nested configs: ``with_overrides(cfg, crop=dict(size=128))``."""
    kw = {}
    for k, v in changes.items():
        cur = getattr(cfg, k)
        kw[k] = dataclasses.replace(cur, **v) if isinstance(v, dict) and dataclasses.is_dataclass(cur) else v
    return dataclasses.replace(cfg, **kw)


def validate_config(cfg: PreprocessConfig) -> None:
    """Refuse settings that would make every clip fail, before any work (names the field and the value)."""
    if cfg.crop.size < 16 or cfg.crop.size % 2:
        raise PipelineError(f"crop.size={cfg.crop.size}: expected an even number >= 16 (H.264 yuv420p needs even sizes)")
    if cfg.faces.stride < 1:
        raise PipelineError(f"faces.stride={cfg.faces.stride}: expected >= 1 (1 = detect on every frame)")
    if not 0.0 <= cfg.min_face_coverage <= 1.0:
        raise PipelineError(f"min_face_coverage={cfg.min_face_coverage}: expected a fraction in [0, 1]")
    if cfg.fps <= 0 or cfg.sample_rate <= 0:
        raise PipelineError(f"fps={cfg.fps}, sample_rate={cfg.sample_rate}: expected positive values")
    if not (cfg.frame_buffer_mb >= 0 and math.isfinite(cfg.frame_buffer_mb)):
        raise PipelineError(f"frame_buffer_mb={cfg.frame_buffer_mb}: expected a finite number of MiB >= 0 "
                            "(0 = always decode twice)")
