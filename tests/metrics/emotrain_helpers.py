"""Helpers for test_metrics_emotion_train.py: the built-in MEAD demo preprocessed through the pipeline API.

Only the video tasks run (face track, crop, encode: ``pipeline.run_video_task``): the emotion recipe reads the crops
and faces tables, not the audio features, and the Whisper audio tasks would triple the time. The manifest is built
with the preprocessing's own ``manifest.source_row`` / ``manifest_table`` from the video records.
"""

from __future__ import annotations

from pathlib import Path


def preprocess_demo_videos(raw: Path, out: Path, *, views: tuple[str, ...] = ("front",),
                           levels: tuple[int, ...] = (3,)) -> Path:
    """Build the test-size MEAD demo into ``raw`` and preprocess the clips of ``views`` at ``levels`` (plus every
    neutral clip: MEAD has neutral at level 1 only) into ``out``; returns ``out``."""
    import pyarrow.parquet as pq

    from dicetalk_bench.demo_data import build_demo
    from dicetalk_bench.fileutil import atomic_path
    from dicetalk_bench.preprocessing import pipeline
    from dicetalk_bench.preprocessing.discovery_mead import discover_mead
    from dicetalk_bench.preprocessing.manifest import PREPROCESSING_VERSION, filter_clips, manifest_table, source_row
    from dicetalk_bench.preprocessing.pipeline import PreprocessConfig, with_overrides

    build_demo(raw, size="test", datasets=("mead",))
    root = raw / "mead"
    clips = [c for c in filter_clips(discover_mead(root).clips, views=views)
             if c.level in levels or c.emotion == "neutral"]
    cfg = with_overrides(PreprocessConfig(), crop=dict(size=64), faces=dict(stride=6, model="short"),
                         preset="ultrafast")
    chash = pipeline.video_config_hash(cfg)
    rows = []
    for c in clips:
        rec = pipeline.run_video_task(pipeline.VideoTask(c, out, cfg, chash))
        row = source_row(c, root) | {"preprocessing_version": PREPROCESSING_VERSION, "config_hash": chash}
        for k in ("src_video_sha256", "n_frames", "fps", "crop_size", "video", "faces", "face_coverage",
                  "n_face_tracks"):
            row[k] = rec.get(k)
        row["status"] = rec["status"]
        if rec["status"] != "ok":
            row["failure_reason"] = f"video: {rec.get('reason')}"
        rows.append(row)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "clips.parquet") as tmp:
        pq.write_table(manifest_table(rows), tmp, compression="zstd")
    return out
