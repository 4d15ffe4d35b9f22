"""What one preprocessing task is, where its outputs go, and the JSON record it leaves.

A task is a frozen dataclass of picklable fields (:class:`VideoTask`: one output clip; :class:`AudioTask`: one
utterance). Its record ``records/{kind}/{id}.json`` (status, reason, config hash, measured facts) is written
atomically once the outputs are complete; a rerun trusts it (:mod:`.planning`) and the manifests are rebuilt from
the records (:mod:`.run_outputs`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dicetalk_bench.fileutil import atomic_write_bytes

from .manifest import PREPROCESSING_VERSION, ClipSource, safe_name
from .preprocess_config import PreprocessConfig


@dataclass(frozen=True)
class VideoTask:
    """One output clip: face track, crop, encode (:func:`~.tasks.run_video_task`)."""

    clip: ClipSource
    out: Path
    config: PreprocessConfig
    config_hash: str
    allow_unverified: bool = False  # for the optional FAN weights

    @property
    def task_id(self) -> str:
        return self.clip.clip_id


@dataclass(frozen=True)
class AudioTask:
    """One utterance's audio features (:func:`~.tasks.run_audio_task`); MEAD's views share one."""

    audio_id: str
    source: Path  # audio file, or the video whose audio stream is used
    start_s: float | None
    end_s: float | None
    out: Path
    config: PreprocessConfig
    config_hash: str
    whisper_spec: str | None  # None: the registry's whisper-tiny
    allow_unverified: bool = False

    @property
    def task_id(self) -> str:
        return self.audio_id


def video_outputs(out: Path, clip_id: str) -> dict[str, Path]:
    """``{"video": videos/{clip_id}.mp4, "faces": faces/{clip_id}.parquet}`` under ``out``."""
    return {"video": out / "videos" / f"{clip_id}.mp4", "faces": out / "faces" / f"{clip_id}.parquet"}


def audio_output(out: Path, audio_id: str) -> Path:
    """``audio/{audio_id}.parquet`` under ``out``."""
    return out / "audio" / f"{audio_id}.parquet"


def record_path(out: Path, kind: str, task_id: str) -> Path:
    """``records/{kind}/{safe task id}.json`` under ``out`` (``kind``: ``video`` or ``audio``)."""
    return out / "records" / kind / f"{safe_name(task_id)}.json"


def read_record(path: Path) -> dict[str, Any] | None:
    """The record at ``path``, or None when it is missing or unreadable (a killed write)."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def write_record(out: Path, kind: str, task_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """Write ``record`` atomically to its :func:`record_path`; returns it."""
    atomic_write_bytes(record_path(out, kind, task_id), json.dumps(record, sort_keys=True, indent=1).encode())
    return record


def failure_record(kind: str, task_id: str, path: Path, exc: BaseException, chash: str) -> dict[str, Any]:
    """The record of a failed task: status ``failed``, the error type and its message as the reason."""
    reason = str(exc) or type(exc).__name__
    return {"task_id": task_id, "kind": kind, "status": "failed", "error_type": type(exc).__name__,
            "reason": reason, "path": str(path), "config_hash": chash, "version": PREPROCESSING_VERSION}
