"""The run's manifests, rebuilt from the task records at the end of every run: ``clips.parquet`` (one row per clip,
status ``ok`` / ``failed`` / ``pending``), ``failures.parquet`` and the Arrow IPC copy of the audio features
(``features.arrow``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from dicetalk_bench.fileutil import atomic_path

from .manifest import PREPROCESSING_VERSION, ClipSource
from .planning import Plan
from .preprocess_config import PreprocessConfig
from .task_records import read_record, record_path


def build_outputs(clips: Sequence[ClipSource], root: Path, out: Path, p: Plan, cfg: PreprocessConfig) -> tuple[Path, Path, Path | None]:
    """Rebuild ``clips.parquet``, ``failures.parquet`` and ``features.arrow`` from the records."""
    import pyarrow.parquet as pq

    from . import audio_features as af
    from .manifest import failures_table, manifest_table, source_row

    rows, failures = [], []
    audio_recs: dict[str, dict[str, Any] | None] = {}
    for a in p.audio_tasks:
        rec = read_record(record_path(out, "audio", a.audio_id))
        audio_recs[a.audio_id] = rec if rec and rec.get("config_hash") == p.audio_hash else None
        if rec and rec.get("status") == "failed" and rec.get("config_hash") == p.audio_hash:
            failures.append(rec)
    for c in clips:
        row = source_row(c, root)
        row.update(preprocessing_version=PREPROCESSING_VERSION, config_hash=p.video_hash)
        vrec = read_record(record_path(out, "video", c.clip_id))
        vrec = vrec if vrec and vrec.get("config_hash") == p.video_hash else None
        arec = audio_recs.get(c.audio_id)
        if vrec:
            for k in ("src_video_sha256", "src_duration_s", "src_fps", "src_width", "src_height", "src_audio_rate",
                      "n_frames", "fps", "crop_size", "video", "faces", "face_coverage", "n_face_tracks"):
                row[k] = vrec.get(k)
            if vrec["status"] == "failed":
                failures.append(vrec)
        if arec:
            row["src_audio_sha256"] = arec.get("src_audio_sha256")
            row["audio_features"] = arec.get("audio_features")
        if vrec is None or arec is None:
            row["status"] = "pending"
        elif vrec["status"] == "ok" and arec["status"] == "ok":
            row["status"] = "ok"
        else:
            row["status"] = "failed"
            row["failure_reason"] = "; ".join(f"{r['kind']}: {r['reason']}" for r in (vrec, arec) if r["status"] == "failed")
        rows.append(row)
    provenance = {"dicetalk_bench": json.dumps({"whisper": p.whisper_record, "version": PREPROCESSING_VERSION},
                                               sort_keys=True)}
    manifest = out / "clips.parquet"
    with atomic_path(manifest) as tmp:
        pq.write_table(manifest_table(rows).replace_schema_metadata(provenance), tmp, compression="zstd")
    fail_path = out / "failures.parquet"
    with atomic_path(fail_path) as tmp:
        pq.write_table(failures_table(failures), tmp, compression="zstd")
    ipc = None
    if cfg.write_ipc:
        tables = {aid: pq.read_table(out / rec["audio_features"]) for aid, rec in sorted(audio_recs.items())
                  if rec and rec["status"] == "ok"}
        ipc = af.write_ipc(tables, out / "features.arrow", metadata={"whisper": p.whisper_record})
    return manifest, fail_path, ipc
