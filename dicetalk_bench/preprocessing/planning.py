"""What a run will do: build the tasks for a list of clips and decide which are done already (record ``ok``, same
config hash, outputs present), so a rerun redoes only the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .manifest import ClipSource
from .preprocess_config import PreprocessConfig, audio_config_hash, video_config_hash
from .task_records import AudioTask, VideoTask, audio_output, read_record, record_path, video_outputs


@dataclass(frozen=True)
class Plan:
    """What a run will do: all tasks, and those still to do."""

    video_tasks: tuple[VideoTask, ...]
    audio_tasks: tuple[AudioTask, ...]
    todo: tuple[VideoTask | AudioTask, ...]
    video_hash: str
    audio_hash: str
    whisper_record: dict[str, Any]


def _is_done(out: Path, kind: str, task_id: str, chash: str, outputs: Sequence[Path]) -> bool:
    rec = read_record(record_path(out, kind, task_id))
    return bool(rec) and rec.get("status") == "ok" and rec.get("config_hash") == chash and all(p.is_file() for p in outputs)


def plan(clips: Sequence[ClipSource], out: Path, cfg: PreprocessConfig, *, allow_unverified: bool = False,
         whisper_record: dict[str, Any] | None = None) -> Plan:
    """Build tasks for ``clips`` and decide which are done (record ok, same config hash, outputs present).

    ``whisper_record``: the record :func:`preflight_weights` returned (resolved here when not given)."""
    if whisper_record is None:
        from .whisper import whisper_record as _record

        whisper_record = _record(cfg.audio.whisper, allow_unverified=allow_unverified)
    wrec = whisper_record
    vh, ah = video_config_hash(cfg), audio_config_hash(cfg, wrec["sha256"])
    vtasks = tuple(VideoTask(c, out, cfg, vh, allow_unverified) for c in clips)
    seen: dict[str, AudioTask] = {}
    for c in clips:
        if c.audio_id not in seen:
            seen[c.audio_id] = AudioTask(c.audio_id, c.audio_path or c.video_path, c.start_s, c.end_s, out, cfg, ah,
                                         cfg.audio.whisper, allow_unverified)
    atasks = tuple(seen.values())
    todo: list[VideoTask | AudioTask] = []
    for a in atasks:
        if not _is_done(out, "audio", a.audio_id, ah, [audio_output(out, a.audio_id)]):
            todo.append(a)
    for v in vtasks:
        if not _is_done(out, "video", v.task_id, vh, list(video_outputs(out, v.task_id).values())):
            todo.append(v)
    return Plan(vtasks, atasks, tuple(todo), vh, ah, wrec)
