"""The per-clip preprocessing work: one video task per output clip, one audio task per utterance.

- :func:`run_video_task`: one output clip -> ``videos/{clip_id}.mp4`` (square face crop, ``size`` px, 25 fps
  H.264, 16 kHz AAC) and ``faces/{clip_id}.parquet`` (one row per output frame);
- :func:`run_audio_task`: one utterance -> ``audio/{audio_id}.parquet`` (log-mel + Whisper states per frame).
  MEAD's 7 views share one audio task.

Both are plain module-level functions of picklable arguments in this importable module: Dask ships
:func:`run_task` by reference (a function defined in ``__main__`` breaks Dask tokenisation). Outputs are written
under temporary names and renamed when complete, then the record (:mod:`.task_records`). A task never raises for a
bad input: the failure is recorded with its reason.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import numpy as np

from dicetalk_bench.config import to_dict
from dicetalk_bench.fileutil import atomic_path, sha256_file

from .clip_frames import FrameBuffer, clip_audio, drain_chunks, range_chunks, read_clip_audio
from .faces_table import faces_table
from .manifest import PREPROCESSING_VERSION
from .preprocess_config import PreprocessConfig
from .task_records import AudioTask, VideoTask, audio_output, failure_record, video_outputs, write_record

log = logging.getLogger(__name__)


class FaceCoverageError(ValueError):
    """The face was found on too few of the checked frames (it leaves the frame or is occluded)."""


def _prepare_process(cfg: PreprocessConfig) -> None:
    """Per-process settings a task needs: one thread in Dask workers, freed frame memory kept for reuse."""
    _set_single_thread()
    if cfg.retain_freed_memory:
        from dicetalk_bench.allocator import retain_freed_memory

        retain_freed_memory()


def _set_single_thread() -> None:
    """In Dask workers: one thread each (the nanny already sets OMP/MKL; torch needs it too)."""
    if os.environ.get("DICETALK_BENCH_WORKER") == "1":
        import cv2
        import torch

        torch.set_num_threads(1)
        cv2.setNumThreads(1)  # warpAffine / resize would otherwise start a thread pool per core


def codec_threads() -> int | None:
    """Decoder / x264 threads: 1 in Dask workers (one thread each), FFmpeg's automatic count otherwise."""
    return 1 if os.environ.get("DICETALK_BENCH_WORKER") == "1" else None


def run_video_task(task: VideoTask) -> dict[str, Any]:
    """Process one clip; returns (and writes) its record. Never raises for a bad input."""
    t0 = time.perf_counter()
    clip, cfg = task.clip, task.config
    try:
        _prepare_process(cfg)
        record = _process_video(task)
    except Exception as exc:  # recorded, never fatal: one bad clip must not stop a 200k-clip run
        log.warning("clip %s failed: %s: %s", clip.clip_id, type(exc).__name__, exc)
        record = failure_record("video", clip.clip_id, clip.video_path, exc, task.config_hash)
    record["elapsed_s"] = round(time.perf_counter() - t0, 3)
    return write_record(task.out, "video", clip.clip_id, record)


def _process_video(task: VideoTask) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from dicetalk_bench import media

    from . import crop as cropm
    from . import faces as facesm
    from .audio_features import check_not_silent

    clip, cfg, out = task.clip, task.config, task.out
    info = media.probe(clip.video_path)
    if not info.has_video:
        raise media.MissingStreamError(clip.video_path, "has no video stream")
    if clip.end_s is not None and clip.end_s > info.duration_s + 1.0 / cfg.fps:
        raise ValueError(f"{clip.video_path}: time range {clip.start_s}-{clip.end_s} s goes past the end of the "
                         f"video ({info.duration_s:.2f} s)")
    samples, audio_src = read_clip_audio(clip, cfg.sample_rate)
    check_not_silent(samples, cfg.audio.silence_peak, str(audio_src))

    # pass 1: detect + track on the 25 fps stream; the frames are kept for pass 2 while they fit the budget
    threads = codec_threads()
    buf = FrameBuffer(range_chunks(clip.video_path, cfg.fps, cfg.chunk_frames, clip.start_s, clip.end_s, threads),
                      int(cfg.frame_buffer_mb * 2**20))
    dets, n_frames, size, pts = facesm.detect_frames(iter(buf), cfg.faces)
    if n_frames == 0:
        raise media.EmptyMediaError(clip.video_path, "no frames in the requested range")
    track = facesm.build_track(dets, n_frames, cfg.fps, size, cfg.faces, name=str(clip.video_path), pts_s=pts)
    coverage = track.coverage()
    if coverage < cfg.min_face_coverage:
        raise FaceCoverageError(
            f"{clip.video_path}: the face is found on only {coverage:.0%} of the checked frames (needs "
            f"{cfg.min_face_coverage:.0%}); it leaves the frame or is hidden")
    mats = cropm.crop_matrices(track.boxes_xyxy, track.keypoints, cfg.crop)

    # audio muxed into the clip: exactly n_frames * 640 samples so audio and video lengths agree
    n_samp = int(round(n_frames * cfg.sample_rate / cfg.fps))
    mux = np.zeros(n_samp, np.float32)
    mux[: min(n_samp, len(samples))] = samples[:n_samp]

    fan = None
    if cfg.fan:
        from .landmarks import FanLandmarker

        fan = FanLandmarker(allow_unverified=task.allow_unverified)  # weights checked by preflight_weights
    lmk68 = np.full((n_frames, 68, 2), np.nan, np.float32) if fan is not None else None

    paths = video_outputs(out, clip.clip_id)
    # pass 2: crop, encode (VideoWriter writes to a temporary name and renames on success), from the kept
    # frames when they fitted the budget, else from a second decode
    kept, buf.chunks = buf.chunks, None  # drain_chunks pops from ``kept``: each chunk is freed once it is cropped
    second = drain_chunks(kept) if kept is not None else range_chunks(clip.video_path, cfg.fps, cfg.chunk_frames,
                                                                 clip.start_s, clip.end_s, threads)
    with media.VideoWriter(paths["video"], cfg.fps, audio=mux, audio_rate=cfg.sample_rate, crf=cfg.crf,
                           preset=cfg.preset, threads=threads) as writer:
        k = 0
        for ch in second:
            batch = np.stack([cropm.warp(f, mats[min(k + i, n_frames - 1)], cfg.crop.size) for i, f in enumerate(ch.frames)])
            if lmk68 is not None:
                m = max(0, min(len(ch.frames), n_frames - k))
                if m:  # one FAN forward per chunk (batched crops), GPU when present
                    lmk68[k:k + m] = fan.batch(ch.frames[:m], track.boxes_xyxy[k:k + m])
            writer.write(batch)
            k += len(ch.frames)
        if k != n_frames:
            raise media.CorruptMediaError(clip.video_path, f"decoded {k} frames on the second pass but {n_frames} on the first")

    table = faces_table(clip.clip_id, track, mats, cfg.crop, lmk68)
    meta = {"config_hash": task.config_hash, "fps": cfg.fps, "crop": to_dict(cfg.crop), "frame_size": list(size),
            "n_tracks": track.n_tracks, "coverage": coverage, "version": PREPROCESSING_VERSION,
            "detector": to_dict(cfg.faces)}
    if fan is not None:
        meta["fan"] = fan.records
    table = table.replace_schema_metadata({"dicetalk_bench": json.dumps(meta, sort_keys=True)})
    with atomic_path(paths["faces"]) as tmp:
        pq.write_table(table, tmp, compression="zstd")

    return {
        "task_id": clip.clip_id, "kind": "video", "status": "ok", "reason": None, "config_hash": task.config_hash,
        "version": PREPROCESSING_VERSION,
        "src_video_sha256": sha256_file(clip.video_path) if cfg.hash_sources else None,
        "src_duration_s": info.duration_s, "src_fps": info.fps, "src_width": info.width, "src_height": info.height,
        "src_audio_rate": info.audio_rate, "n_frames": n_frames, "fps": cfg.fps, "crop_size": cfg.crop.size,
        "video": str(paths["video"].relative_to(out)), "faces": str(paths["faces"].relative_to(out)),
        "face_coverage": coverage, "n_face_tracks": track.n_tracks,
    }


def run_audio_task(task: AudioTask) -> dict[str, Any]:
    """Compute one utterance's audio features; returns (and writes) its record. Never raises for a bad input."""
    t0 = time.perf_counter()
    try:
        _prepare_process(task.config)
        record = _process_audio(task)
    except Exception as exc:
        log.warning("audio %s failed: %s: %s", task.audio_id, type(exc).__name__, exc)
        record = failure_record("audio", task.audio_id, task.source, exc, task.config_hash)
    record["elapsed_s"] = round(time.perf_counter() - t0, 3)
    return write_record(task.out, "audio", task.audio_id, record)


def _process_audio(task: AudioTask) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from dicetalk_bench import media

    from . import audio_features as af
    from .whisper import load_whisper

    cfg = task.config
    samples = clip_audio(media.read_audio(task.source, cfg.sample_rate), cfg.sample_rate, task.start_s, task.end_s)
    af.check_not_silent(samples, cfg.audio.silence_peak, str(task.source))
    n_frames = af.n_video_frames(len(samples))
    if n_frames < 1:
        raise media.EmptyMediaError(task.source, f"audio shorter than one video frame ({len(samples)} samples)")
    handle = load_whisper(task.whisper_spec, allow_unverified=task.allow_unverified)
    logmel = af.log_mel_per_frame(samples, n_frames)
    states = af.whisper_states(samples, handle.encoder, n_frames, batch=cfg.audio.whisper_batch)
    src_sha = sha256_file(task.source) if cfg.hash_sources else None
    meta = {"audio_id": task.audio_id, "config_hash": task.config_hash, "whisper": handle.record,
            "sample_rate": cfg.sample_rate, "n_samples": int(len(samples)), "fps": cfg.fps,
            "src": str(task.source), "src_sha256": src_sha, "version": PREPROCESSING_VERSION}
    table = af.features_table(task.audio_id, logmel, states, meta)
    target = audio_output(task.out, task.audio_id)
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=4096)
    return {"task_id": task.audio_id, "kind": "audio", "status": "ok", "reason": None,
            "config_hash": task.config_hash, "version": PREPROCESSING_VERSION, "n_frames": n_frames,
            "n_samples": int(len(samples)), "src_audio_sha256": src_sha,
            "audio_features": str(target.relative_to(task.out)), "whisper": handle.record}


def run_task(task: VideoTask | AudioTask) -> dict[str, Any]:
    """The Dask task function (module-level, picklable by reference)."""
    return run_video_task(task) if isinstance(task, VideoTask) else run_audio_task(task)
