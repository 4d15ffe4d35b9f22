"""Per-clip preprocessing tasks and their orchestration (serial or Dask).

Two kinds of task, one per unit of work, both plain functions of picklable arguments in this importable
module (a function defined in ``__main__`` breaks Dask tokenisation):

- :func:`run_video_task`: one output clip -> ``videos/{clip_id}.mp4`` (square face crop, ``size`` px, 25 fps
  H.264, 16 kHz AAC) and ``faces/{clip_id}.parquet`` (one row per output frame);
- :func:`run_audio_task`: one utterance -> ``audio/{audio_id}.parquet`` (log-mel + Whisper states per frame).
  MEAD's 7 views share one audio task.

Every task writes its outputs under temporary names and renames them when complete, then writes a record
``records/{kind}/{id}.json`` (status, reason, config hash, measured facts). A task never raises for a bad
input: the failure is recorded with its reason. A rerun skips tasks whose record says ``ok`` with the same
config hash (and whose outputs exist), redoes the others, and deletes temporaries left by a killed run.
The manifests (``clips.parquet``, ``failures.parquet``) and the Arrow IPC copy of the audio features
(``features.arrow``) are rebuilt from the records at the end of every run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from dicetalk_bench.config import config_hash, to_dict
from dicetalk_bench.fileutil import atomic_path, atomic_write_bytes, sha256_file

from .audio_features import AudioConfig
from .crop import CropConfig
from .faces import FaceTrackConfig
from .manifest import PREPROCESSING_VERSION, ClipSource, safe_name

log = logging.getLogger(__name__)


class PipelineError(RuntimeError):
    """The run as a whole cannot proceed (e.g. the output folder is not writable)."""


class FaceCoverageError(ValueError):
    """The face was found on too few of the checked frames (it leaves the frame or is occluded)."""


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


# ------------------------------------------------------------------------------------------------ tasks
@dataclass(frozen=True)
class VideoTask:
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
    return {"video": out / "videos" / f"{clip_id}.mp4", "faces": out / "faces" / f"{clip_id}.parquet"}


def audio_output(out: Path, audio_id: str) -> Path:
    return out / "audio" / f"{audio_id}.parquet"


def record_path(out: Path, kind: str, task_id: str) -> Path:
    return out / "records" / kind / f"{safe_name(task_id)}.json"


def read_record(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_record(out: Path, kind: str, task_id: str, record: dict[str, Any]) -> dict[str, Any]:
    atomic_write_bytes(record_path(out, kind, task_id), json.dumps(record, sort_keys=True, indent=1).encode())
    return record


def _failure(kind: str, task_id: str, path: Path, exc: BaseException, chash: str) -> dict[str, Any]:
    reason = str(exc) or type(exc).__name__
    return {"task_id": task_id, "kind": kind, "status": "failed", "error_type": type(exc).__name__,
            "reason": reason, "path": str(path), "config_hash": chash, "version": PREPROCESSING_VERSION}


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


def _codec_threads() -> int | None:
    """Decoder / x264 threads: 1 in Dask workers (one thread each), FFmpeg's automatic count otherwise."""
    return 1 if os.environ.get("DICETALK_BENCH_WORKER") == "1" else None


def _held_nbytes(a: np.ndarray) -> int:
    """Bytes kept alive by ``a``: its base array's when it is a view (a chunk slice keeps the whole chunk)."""
    base = a.base if isinstance(a.base, np.ndarray) else a
    return int(max(a.nbytes, base.nbytes))


class FrameBuffer:
    """Pass-through over a chunk stream that keeps the frames while they fit ``budget_bytes``.

    After the stream is consumed, :attr:`chunks` holds every chunk (so a second decode is not needed), or
    is None when the frames outgrew the budget: then the buffer was dropped at the moment it would have
    exceeded it, so at most ``budget_bytes`` of frames are ever held here.
    """

    def __init__(self, chunks: Iterator[Any], budget_bytes: int) -> None:
        self._src = chunks
        self.budget_bytes = int(budget_bytes)
        self.nbytes = 0
        self.peak_bytes = 0
        self.chunks: list[Any] | None = [] if budget_bytes > 0 else None

    def __iter__(self) -> Iterator[Any]:
        for ch in self._src:
            if self.chunks is not None:
                size = _held_nbytes(ch.frames)
                if self.nbytes + size > self.budget_bytes:
                    self.chunks, self.nbytes = None, 0  # over budget: fall back to a second decode pass
                else:
                    self.chunks.append(ch)
                    self.nbytes += size
                    self.peak_bytes = max(self.peak_bytes, self.nbytes)
            yield ch


def _clip_audio(samples: np.ndarray, rate: int, start_s: float | None, end_s: float | None) -> np.ndarray:
    a = 0 if start_s is None else int(round(start_s * rate))
    b = len(samples) if end_s is None else int(round(end_s * rate))
    return samples[a:b]


def _drain(chunks: list[Any]) -> Iterator[Any]:
    """Yield and forget the kept chunks one by one, so each is freed once it is cropped."""
    while chunks:
        yield chunks.pop(0)


def _range_chunks(path: Path, fps: float, chunk_frames: int, start_s: float | None, end_s: float | None,
                  threads: int | None = None) -> Iterator[Any]:
    """Chunks of the 25 fps stream restricted to output frames k with start <= k / fps < end (renumbered)."""
    from types import SimpleNamespace

    from dicetalk_bench import media

    k0 = 0 if start_s is None else int(round(start_s * fps))
    k1 = None if end_s is None else int(round(end_s * fps))
    gen = media.iter_video(path, chunk_frames=chunk_frames, fps=fps, threads=threads)
    n_out = 0
    try:
        for ch in gen:
            lo, hi = ch.start_index, ch.start_index + len(ch.frames)
            a, b = max(lo, k0), hi if k1 is None else min(hi, k1)
            if b > a:
                yield SimpleNamespace(frames=ch.frames[a - lo:b - lo], pts_s=ch.pts_s[a - lo:b - lo], start_index=n_out)
                n_out += b - a
            if k1 is not None and hi >= k1:
                break
    finally:
        gen.close()


def _read_clip_audio(clip: ClipSource, rate: int) -> tuple[np.ndarray, Path]:
    from dicetalk_bench import media

    src = clip.audio_path or clip.video_path
    return _clip_audio(media.read_audio(src, rate), rate, clip.start_s, clip.end_s), src


def run_video_task(task: VideoTask) -> dict[str, Any]:
    """Process one clip; returns (and writes) its record. Never raises for a bad input."""
    t0 = time.perf_counter()
    clip, cfg = task.clip, task.config
    try:
        _prepare_process(cfg)
        record = _process_video(task)
    except Exception as exc:  # recorded, never fatal: one bad clip must not stop a 200k-clip run
        log.warning("clip %s failed: %s: %s", clip.clip_id, type(exc).__name__, exc)
        record = _failure("video", clip.clip_id, clip.video_path, exc, task.config_hash)
    record["elapsed_s"] = round(time.perf_counter() - t0, 3)
    return _write_record(task.out, "video", clip.clip_id, record)


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
    samples, audio_src = _read_clip_audio(clip, cfg.sample_rate)
    check_not_silent(samples, cfg.audio.silence_peak, str(audio_src))

    # pass 1: detect + track on the 25 fps stream; the frames are kept for pass 2 while they fit the budget
    threads = _codec_threads()
    buf = FrameBuffer(_range_chunks(clip.video_path, cfg.fps, cfg.chunk_frames, clip.start_s, clip.end_s, threads),
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
    kept, buf.chunks = buf.chunks, None  # _drain pops from ``kept``: each chunk is freed once it is cropped
    second = _drain(kept) if kept is not None else _range_chunks(clip.video_path, cfg.fps, cfg.chunk_frames,
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


def faces_table(clip_id: str, track: Any, mats: np.ndarray, crop_cfg: CropConfig, lmk68: np.ndarray | None = None) -> Any:
    """``faces.parquet`` rows (one per output frame); schema in docs/data_format.md."""
    import pyarrow as pa

    from . import crop as cropm
    from .audio_features import _tensor_array

    T = len(track.boxes_xyxy)
    box_crop = cropm.map_boxes(mats, track.boxes_xyxy)
    kps_crop = cropm.apply_affine(mats, track.keypoints)
    mask = cropm.scale_boxes(box_crop, crop_cfg.mask_scale, limit=float(crop_cfg.size))

    def fsl(values: np.ndarray, n: int, typ=pa.float32()) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(values, dtype=typ.to_pandas_dtype()).reshape(-1), typ), n)

    cols = {
        "clip_id": pa.array([clip_id] * T, pa.string()),
        "frame": pa.array(np.arange(T, dtype=np.int32)),
        "pts_s": pa.array(np.asarray(track.pts_s if track.pts_s is not None else np.full(T, np.nan), np.float64)),
        "detected": pa.array(track.detected),
        "det_score": pa.array(track.scores.astype(np.float32)),
        "box_raw_src": fsl(track.boxes_raw_xyxy if track.boxes_raw_xyxy is not None else track.boxes_xyxy, 4),
        "box_src": fsl(track.boxes_xyxy, 4),
        "kps_src": _tensor_array(track.keypoints.astype(np.float32), pa.fixed_shape_tensor(pa.float32(), [6, 2])),
        "crop_affine": _tensor_array(mats.astype(np.float64), pa.fixed_shape_tensor(pa.float64(), [2, 3])),
        "box_crop": fsl(box_crop, 4),
        "kps_crop": _tensor_array(kps_crop.astype(np.float32), pa.fixed_shape_tensor(pa.float32(), [6, 2])),
        "mask_box_crop": fsl(mask, 4),
        "box_source": pa.array([getattr(track, "box_source", "blazeface")] * T, pa.string()),
    }
    if lmk68 is not None:
        cols["lmk68_src"] = _tensor_array(lmk68.astype(np.float32), pa.fixed_shape_tensor(pa.float32(), [68, 2]))
        cols["lmk68_crop"] = _tensor_array(cropm.apply_affine(mats, lmk68).astype(np.float32),
                                           pa.fixed_shape_tensor(pa.float32(), [68, 2]))
    return pa.table(cols)


def run_audio_task(task: AudioTask) -> dict[str, Any]:
    """Compute one utterance's audio features; returns (and writes) its record. Never raises for a bad input."""
    t0 = time.perf_counter()
    try:
        _prepare_process(task.config)
        record = _process_audio(task)
    except Exception as exc:
        log.warning("audio %s failed: %s: %s", task.audio_id, type(exc).__name__, exc)
        record = _failure("audio", task.audio_id, task.source, exc, task.config_hash)
    record["elapsed_s"] = round(time.perf_counter() - t0, 3)
    return _write_record(task.out, "audio", task.audio_id, record)


def _process_audio(task: AudioTask) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from dicetalk_bench import media

    from . import audio_features as af
    from .whisper import load_whisper

    cfg = task.config
    samples = _clip_audio(media.read_audio(task.source, cfg.sample_rate), cfg.sample_rate, task.start_s, task.end_s)
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


# ------------------------------------------------------------------------------------------------ planning
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


def sweep_temporaries(out: Path) -> list[Path]:
    """Delete temporaries (``.name.PID.tmp*``) left by a killed run; returns what was removed."""
    removed = []
    for p in out.rglob(".*.tmp*"):
        if p.is_file():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    for p in sorted(out.rglob(".*.tmp"), reverse=True):  # folders (random weights) from a killed builder
        if p.is_dir():
            import shutil

            shutil.rmtree(p, ignore_errors=True)
    return removed


def check_writable(out: Path) -> None:
    """Raise :class:`PipelineError` naming ``out`` when it cannot be created or written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write_probe.{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise PipelineError(f"output folder {out} is not writable ({exc.strerror or exc}); choose another --out "
                            f"or fix its permissions") from exc


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


def detector_keys(faces: FaceTrackConfig) -> tuple[str, ...]:
    """The registry keys the face-box provider of ``faces`` may load (BlazeFace ``auto`` picks per frame size:
    both). An unknown provider raises ValueError naming the known ones."""
    from .faces import box_source

    return tuple(box_source(faces.box_source).weights_keys(faces))


def preflight_weights(cfg: PreprocessConfig, *, allow_unverified: bool = False) -> dict[str, dict[str, Any]]:
    """Resolve every pretrained file the run needs, before anything is written or any worker starts.

    Checks the BlazeFace models (:func:`detector_keys`, or ``faces.detector_path``), the Whisper encoder
    (``audio.whisper``: the registry's whisper-tiny by default) and, with ``fan``, the FAN and S3FD files. Returns
    ``{key: record}`` (``record()`` of each resolved file; the Whisper one under ``"whisper"``). Raises
    :class:`PipelineError` naming every missing or refused file and how to get it, so a run without weights stops
    once, at the start, instead of failing clip by clip. A ``random:SEED`` Whisper is logged as a warning: its
    features are useless for real training and every output records it.
    """
    from dicetalk_bench import weights

    from .whisper import describe_spec, random_seed_of, whisper_record

    records: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    if cfg.faces.detector_path is not None and not Path(cfg.faces.detector_path).is_file():
        problems.append(f"faces.detector_path={cfg.faces.detector_path}: no such file (a BlazeFace .tflite model); "
                        f"fix the path, or drop the setting to use the registry's blazeface files")
    keys = list(detector_keys(cfg.faces)) + (["fan-2d", "s3fd"] if cfg.fan else [])
    for key in keys:
        try:
            records[key] = weights.resolve(key, allow_unverified=allow_unverified).record()
        except weights.WeightsError as exc:
            problems.append(str(exc))
    try:
        random_seed_of(cfg.audio.whisper)
        records["whisper"] = whisper_record(cfg.audio.whisper, allow_unverified=allow_unverified)
    except ValueError as exc:  # random:<not an int>
        problems.append(str(exc))
    except weights.WeightsError as exc:
        hint = ("" if cfg.audio.whisper is not None else
                "\nOr pass --whisper DIR (a whisper-tiny transformers folder). Only for smoke runs without real "
                "weights: --whisper random:SEED (an uncalibrated random encoder; every output records it).")
        problems.append(f"{exc}{hint}")
    if problems:
        raise PipelineError(f"{len(problems)} weights problem(s); nothing was processed or written:\n- "
                            + "\n- ".join(problems))
    if random_seed_of(cfg.audio.whisper) is not None:
        log.warning("audio features use a %s: fine for smoke tests and the demo, useless for real training; "
                    "clips.parquet, features.arrow, each audio Parquet file and preprocess_config.yaml record it",
                    describe_spec(cfg.audio.whisper))
    return records


def check_performance_report_deps() -> None:
    """Dask's performance report renders with bokeh, which is not a dependency: fail before any work."""
    try:
        import bokeh  # noqa: F401
    except ImportError:
        raise PipelineError("--performance-report needs the 'bokeh' package (pip install 'bokeh>=3.1'); "
                            "rerun without --performance-report or install it") from None


# ------------------------------------------------------------------------------------------------ execution
@dataclass
class RunSummary:
    n_tasks: int
    n_todo: int
    n_ok: int
    n_failed: int
    elapsed_s: float
    manifest: Path | None = None
    failures: Path | None = None
    ipc: Path | None = None


def local_cluster(workers: int, *, retain_freed_memory: bool = True) -> Any:
    """The default Dask cluster: ``workers`` processes with one thread each (``DICETALK_BENCH_WORKER=1``).

    With ``retain_freed_memory`` the workers start with :func:`dicetalk_bench.allocator.retained_memory_environ`
    in place of Dask's own ``MALLOC_TRIM_THRESHOLD_`` (which hands freed memory back at once, so every clip's
    frames would be fresh pages again).
    """
    import dask
    from distributed import LocalCluster

    from dicetalk_bench.allocator import retained_memory_environ

    spawn_env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    if retain_freed_memory:
        spawn_env.update(retained_memory_environ())
    os.environ["DICETALK_BENCH_WORKER"] = "1"  # inherited by the worker processes
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": spawn_env}):
            return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    finally:
        os.environ.pop("DICETALK_BENCH_WORKER", None)


def execute(tasks: Sequence[VideoTask | AudioTask], *, workers: int = 2, scheduler: str | None = None,
            progress: bool = True, performance_report: Path | None = None,
            on_result: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Run tasks: serially in this process (``workers=0``) or on Dask (LocalCluster or ``scheduler`` address).

    A LocalCluster's workers start with the allocator environment unless the tasks' configs turn
    ``retain_freed_memory`` off."""
    from tqdm.auto import tqdm

    results: list[dict[str, Any]] = []
    if not tasks:
        return results
    bar = tqdm(total=len(tasks), desc="preprocess", unit="task", disable=not progress)
    if workers == 0 and scheduler is None:
        for t in tasks:
            results.append(run_task(t))
            bar.update(1)
        bar.close()
        return results

    from distributed import Client, as_completed

    from dicetalk_bench.quiet import quiet_dask_workers

    cluster = None
    if scheduler is None:
        cluster = local_cluster(workers, retain_freed_memory=all(t.config.retain_freed_memory for t in tasks))
        client = Client(cluster)
    else:
        client = Client(scheduler)
    if cluster is not None:  # our own workers' native stderr (Dask, TFLite, mediapipe) only with DEBUG logging
        quiet_dask_workers(client)
    report = contextlib.nullcontext()
    if performance_report is not None:
        from distributed import performance_report as perf

        report = perf(filename=str(performance_report))
    try:
        with report:
            futures = client.map(run_task, list(tasks), pure=False)
            fut_task = {f.key: t for f, t in zip(futures, tasks)}
            for fut in as_completed(futures):
                try:
                    rec = fut.result()
                except Exception as exc:  # the worker died or the task could not be shipped
                    t = fut_task[fut.key]
                    kind = "video" if isinstance(t, VideoTask) else "audio"
                    src = t.clip.video_path if isinstance(t, VideoTask) else t.source
                    rec = _failure(kind, t.task_id, src, exc, t.config_hash)
                    with contextlib.suppress(OSError):
                        _write_record(t.out, kind, t.task_id, rec)
                results.append(rec)
                if on_result:
                    on_result(rec)
                bar.update(1)
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
    return results


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


def run(clips: Sequence[ClipSource], root: Path, out: Path, cfg: PreprocessConfig, *, workers: int = 2,
        scheduler: str | None = None, progress: bool = True, performance_report: Path | None = None,
        allow_unverified: bool = False, weights_records: dict[str, dict[str, Any]] | None = None) -> RunSummary:
    """Preprocess ``clips`` into ``out`` (resumable); see the module docstring.

    ``weights_records``: what :func:`preflight_weights` returned when the caller ran it already; otherwise it
    runs here, before the output folder is touched."""
    from dicetalk_bench.config import save_config

    t0 = time.perf_counter()
    out = Path(out)
    if performance_report is not None:
        check_performance_report_deps()
    validate_config(cfg)
    records = weights_records or preflight_weights(cfg, allow_unverified=allow_unverified)
    check_writable(out)
    removed = sweep_temporaries(out)
    if removed:
        log.info("removed %d temporary files left by an interrupted run", len(removed))
    save_config(cfg, out, name="preprocess_config.yaml")
    p = plan(clips, out, cfg, allow_unverified=allow_unverified, whisper_record=records["whisper"])
    log.info("%d tasks (%d video, %d audio), %d to do", len(p.video_tasks) + len(p.audio_tasks), len(p.video_tasks),
             len(p.audio_tasks), len(p.todo))
    results = execute(p.todo, workers=workers, scheduler=scheduler, progress=progress,
                      performance_report=performance_report)
    manifest, failures, ipc = build_outputs(clips, root, out, p, cfg)
    n_failed = sum(r["status"] == "failed" for r in results)
    return RunSummary(len(p.video_tasks) + len(p.audio_tasks), len(p.todo), len(results) - n_failed, n_failed,
                      time.perf_counter() - t0, manifest, failures, ipc)


def with_overrides(cfg: PreprocessConfig, **changes: Any) -> PreprocessConfig:
    """``dataclasses.replace`` for nested configs: ``with_overrides(cfg, crop=dict(size=128))``."""
    kw = {}
    for k, v in changes.items():
        cur = getattr(cfg, k)
        kw[k] = dataclasses.replace(cur, **v) if isinstance(v, dict) and dataclasses.is_dataclass(cur) else v
    return dataclasses.replace(cfg, **kw)
