"""Generate a test split restartably, serially or sharded over Dask workers, loading the model once per process.

One task per clip. Each generated clip is written atomically as ``<out>/<clip_id>.mp4`` (25 fps with the clip's
audio) and committed by a sidecar ``<out>/<clip_id>.mp4.json`` written after it. A clip is reused only when the
sidecar's key matches the key of this run, made from (see :func:`generation_key`):

- the checkpoint's content hash, the sampling settings' hash and the sampler and toolkit versions,
- the sha256 of the clip's processed inputs (video, audio features, face track), its dataset, split and seed,

and the video on disk still has the sha256 the sidecar recorded. A rerun after a kill therefore generates only what
is missing and leaves finished files untouched; every clip's frames equal an uninterrupted run's (the seed is derived
per clip id; the sidecar records the sha256 of the frames, which the tests compare, beside the file's).

Trouble, two kinds:

- per-clip failures (an unreadable processed input, a full disk while writing: :class:`~dicetalk_bench.errors.ItemFailure`,
  media errors, ``OSError``) are recorded with their reason and the run goes on;
- anything else (a wrong checkpoint, a bug, a GPU worker without CUDA) stops the run with its message.

The sampler is built by ``SamplerSpec.loader`` (``"module:function"`` or a function, called with the spec) once per
process and kept in a process-level cache, so each Dask worker loads the model once and keeps it across tasks. The
object it returns must have ``generate_clip(row: dict) -> (T, H, W, 3) uint8`` (frames at 25 fps, one per
ground-truth frame) and ``provenance() -> dict`` (JSON-ready; stored in every clip's sidecar, so a fully reused run
still knows what made its clips).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from dicetalk_bench.errors import ItemFailure, SetupError
from dicetalk_bench.fileutil import atomic_path, sha256_file

logger = logging.getLogger(__name__)

#: Bumped whenever the same inputs and settings would give other frames.
SAMPLER_VERSION = "1"
#: Settings that change only how the work is run, not what it computes, so they stay out of the key: the windows
#: per network call give the same frames up to float rounding (bit-identical in float64; in float32 they differ
#: by at most ~1e-3 of the [-1, 1] range, as a change of torch's thread count does; docs/model.md).
EXECUTION_SETTINGS = frozenset({"window_batch"})
GENERATED_FPS = 25.0
AUDIO_RATE = 16000
SIDECAR_SUFFIX = ".json"
INPUT_COLUMNS = ("video", "audio_features", "faces")  # clips.parquet columns naming the processed inputs

_CLIP_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class GpuUnavailableError(SetupError):
    """A worker was asked for GPU work (``resources={"GPU": 1}``) but has no CUDA device."""


def validate_clip_id(clip_id: str) -> str:
    """Return ``clip_id`` if it is safe to use as a relative path, else raise ValueError naming it.

    Allowed: ``/``-separated parts of letters, digits and ``. _ + -``, each starting with a letter or digit (so no
    ``..``, no hidden files, no absolute paths, no backslashes, no empty parts).
    """
    if not isinstance(clip_id, str) or not clip_id:
        raise ValueError(f"clip id {clip_id!r} is empty or not a string")
    parts = clip_id.split("/")
    bad = [p for p in parts if not _CLIP_PART.match(p)]
    if bad or PurePosixPath(clip_id).is_absolute():
        raise ValueError(f"clip id {clip_id!r} cannot be used as a file path (bad parts {bad}): ids are '/'-separated "
                         "names of letters, digits and '._+-', without '..' or a leading '/'")
    return clip_id


@dataclasses.dataclass(frozen=True)
class SamplerSpec:
    """What every task needs to build the same sampler: picklable, hashable, compared by value.

    ``settings`` are the sampling settings as sorted (name, value) pairs (they, less :data:`EXECUTION_SETTINGS`,
    and ``sampler_version`` enter the key); ``checkpoint_sha256`` is the checkpoint's content hash, computed once
    by the caller.
    """

    checkpoint: str
    checkpoint_sha256: str
    data_root: str
    settings: tuple[tuple[str, Any], ...] = ()
    device: str = "cpu"
    seed: int = 0
    loader: Any = "dicetalk_bench.model.pipeline:load_sampler"  # "module:function" (picklable) or a function
    use_gpu: bool = False
    sources: Any = None  # a release folder's ReleaseSources (frozen, so the spec stays hashable)

    @property
    def settings_sha256(self) -> str:
        """sha256 of the settings that change the frames (:data:`EXECUTION_SETTINGS` left out)."""
        kept = [(name, value) for name, value in self.settings if name not in EXECUTION_SETTINGS]
        return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class ClipJob:
    """One clip to generate: its manifest row, its validated id and its output path relative to the output folder."""

    clip_id: str
    row: Mapping[str, Any]
    dataset: str
    split: str


def input_hashes(row: Mapping[str, Any], data_root: str | Path) -> dict[str, str]:
    """sha256 of each processed input file of a clip (:data:`INPUT_COLUMNS`); a missing file raises ItemFailure."""
    root = Path(data_root)
    out: dict[str, str] = {}
    for column in INPUT_COLUMNS:
        rel = row.get(column)
        if not rel:
            raise ItemFailure(f"clip {row.get('clip_id')}: manifest has no {column!r} path")
        path = root / str(rel)
        if not path.is_file():
            raise ItemFailure(f"clip {row.get('clip_id')}: processed input {path} is missing")
        out[column] = sha256_file(path)
    return out


def generation_key(spec: SamplerSpec, job: ClipJob, inputs: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
    """(hex key, its parts): everything that changes a generated clip's bytes."""
    import dicetalk_bench

    parts = {"checkpoint_sha256": spec.checkpoint_sha256, "settings_sha256": spec.settings_sha256,
             "sampler_version": SAMPLER_VERSION, "toolkit_version": dicetalk_bench.__version__,
             "inputs": dict(sorted(inputs.items())), "dataset": job.dataset, "split": job.split,
             "clip_id": job.clip_id, "seed": spec.seed}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest(), parts


def output_path(out_dir: str | Path, clip_id: str) -> Path:
    return Path(out_dir) / f"{validate_clip_id(clip_id)}.mp4"


def sidecar_path(video: Path) -> Path:
    return video.with_name(video.name + SIDECAR_SUFFIX)


def finished_record(video: Path, key: str) -> dict[str, Any] | None:
    """The sidecar of ``video`` when it commits this ``key`` and the file still has its recorded sha256."""
    side = sidecar_path(video)
    try:
        rec = json.loads(side.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if rec.get("key") != key or not video.is_file() or sha256_file(video) != rec.get("video_sha256"):
        return None
    return rec


# ------------------------------------------------------------------------------------------ process-level cache
_SAMPLERS: dict[SamplerSpec, Any] = {}
_LOAD_COUNT = {"n": 0}


def _load_callable(path: Any) -> Callable[[SamplerSpec], Any]:
    if callable(path):
        return path
    module, _, name = str(path).partition(":")
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise SetupError(f"sampler loader {path!r} is not a function")
    return fn


def cached_sampler(spec: SamplerSpec) -> Any:
    """The sampler for ``spec``, built once per process (the other specs' samplers are dropped first)."""
    sampler = _SAMPLERS.get(spec)
    if sampler is None:
        _SAMPLERS.clear()
        sampler = _load_callable(spec.loader)(spec)
        _SAMPLERS[spec] = sampler
        _LOAD_COUNT["n"] += 1
    return sampler


def sampler_loads() -> int:
    """How many samplers this process has built (for tests and the provenance)."""
    return _LOAD_COUNT["n"]


def check_gpu(worker_name: str = "this process") -> str:
    """Raise :class:`GpuUnavailableError` naming the worker when CUDA is unavailable; return the device count."""
    import torch

    if not torch.cuda.is_available():
        raise GpuUnavailableError(f"worker {worker_name} was started with GPU resources but torch sees no CUDA "
                                  f"device (torch {torch.__version__}, CUDA_VISIBLE_DEVICES="
                                  f"{os.environ.get('CUDA_VISIBLE_DEVICES')!r}); start GPU workers on GPU nodes "
                                  "with a CUDA build of torch, or run without --gpus")
    return str(torch.cuda.device_count())


def _task_device(spec: SamplerSpec) -> SamplerSpec:
    """Pin a GPU worker to one device: LocalCluster workers are named 0..N-1, one per CUDA device."""
    if not spec.use_gpu:
        return spec
    import torch

    try:
        from distributed import get_worker

        name = get_worker().name
    except (ImportError, ValueError):
        name = "local"
    check_gpu(str(name))
    index = int(name) % torch.cuda.device_count() if str(name).isdigit() else 0
    return dataclasses.replace(spec, device=f"cuda:{index}")


# ------------------------------------------------------------------------------------------------ one clip
def _write_clip(video: Path, frames: Any, audio: Any, record: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from dicetalk_bench import media

    # one x264 thread: the bytes must not depend on the machine's core count or load (reuse compares sha256)
    with media.VideoWriter(video, GENERATED_FPS, audio=audio, audio_rate=AUDIO_RATE if audio is not None else None,
                           threads=1) as writer:
        writer.write(frames)
    # the generated frames' own hash: what a rerun or another worker must reproduce (the mp4 bytes can vary with
    # the encoder, which is why reuse also checks the file's own sha256)
    arr = np.ascontiguousarray(frames)
    record = {**record, "video_sha256": sha256_file(video), "frames_sha256": hashlib.sha256(arr.tobytes()).hexdigest(),
              "frames_shape": list(arr.shape)}
    with atomic_path(sidecar_path(video)) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    return record


def generate_one(spec: SamplerSpec, job: ClipJob, out_dir: str) -> dict[str, Any]:
    """Generate (or reuse) one clip. Returns ``{"clip_id", "status": generated|reused|failed, ...}``."""
    import numpy as np

    from dicetalk_bench import media

    if os.environ.get("DICETALK_BENCH_WORKER") == "1":
        import torch

        torch.set_num_threads(1)
    video = output_path(out_dir, job.clip_id)
    base = {"clip_id": job.clip_id, "pid": os.getpid()}
    try:
        inputs = input_hashes(job.row, spec.data_root)
    except ItemFailure as exc:
        return {**base, "status": "failed", "kind": exc.kind, "reason": str(exc), "loads": sampler_loads()}
    key, parts = generation_key(spec, job, inputs)
    done = finished_record(video, key)
    if done is not None:
        return {**base, "status": "reused", "loads": sampler_loads(), "sampler": done.get("sampler")}
    sampler = cached_sampler(_task_device(spec))
    made_by = sampler.provenance()
    try:
        frames = np.asarray(sampler.generate_clip(dict(job.row)))
        try:
            audio = media.read_audio(Path(spec.data_root) / str(job.row["video"]), AUDIO_RATE)
            audio = audio[: int(round(len(frames) / GENERATED_FPS * AUDIO_RATE))]
        except media.MissingStreamError:
            audio = None
        _write_clip(video, frames, audio, {"clip_id": job.clip_id, "key": key, "key_parts": parts,
                                           "n_frames": int(len(frames)), "fps": GENERATED_FPS, "sampler": made_by})
    except (ItemFailure, media.MediaError, OSError) as exc:
        sidecar_path(video).unlink(missing_ok=True)
        kind = getattr(exc, "kind", "unreadable-video")
        logger.warning("generation of %s failed: %s", job.clip_id, exc)
        return {**base, "status": "failed", "kind": kind, "reason": f"{type(exc).__name__}: {exc}",
                "loads": sampler_loads()}
    return {**base, "status": "generated", "loads": sampler_loads(), "sampler": made_by}


# ------------------------------------------------------------------------------------------------ the split
@dataclasses.dataclass(frozen=True)
class GenerationSummary:
    """Counts and per-clip failures of one run, for the provenance."""

    out_dir: Path
    n_clips: int
    generated: tuple[str, ...]
    reused: tuple[str, ...]
    failures: Mapping[str, str]
    failure_kinds: Mapping[str, str]
    sampler_loads_per_process: Mapping[int, int]
    sampler: Mapping[str, Any] | None = None  # the sampler's provenance (from a run or a reused clip's sidecar)

    def record(self) -> dict[str, Any]:
        return {"n_clips": self.n_clips, "n_generated": len(self.generated), "n_reused": len(self.reused),
                "n_failed": len(self.failures), "failures": dict(self.failures),
                "failure_kinds": dict(self.failure_kinds),
                "sampler_loads": sum(self.sampler_loads_per_process.values()),
                "processes": len(self.sampler_loads_per_process)}


def make_jobs(rows: Iterable[Mapping[str, Any]], dataset: str, split: str) -> list[ClipJob]:
    """Jobs for manifest rows, ids validated (a bad id raises ValueError before anything runs), sorted by id."""
    jobs = [ClipJob(validate_clip_id(str(r["clip_id"])), dict(r), dataset, split) for r in rows]
    ids = [j.clip_id for j in jobs]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate clip ids in the manifest rows")
    return sorted(jobs, key=lambda j: j.clip_id)


def _summarise(out_dir: Path, results: Sequence[Mapping[str, Any]]) -> GenerationSummary:
    loads: dict[int, int] = {}
    for r in results:
        loads[int(r["pid"])] = max(loads.get(int(r["pid"]), 0), int(r.get("loads", 0)))
    return GenerationSummary(
        out_dir=out_dir, n_clips=len(results),
        generated=tuple(sorted(r["clip_id"] for r in results if r["status"] == "generated")),
        reused=tuple(sorted(r["clip_id"] for r in results if r["status"] == "reused")),
        failures={r["clip_id"]: r["reason"] for r in results if r["status"] == "failed"},
        failure_kinds={r["clip_id"]: r["kind"] for r in results if r["status"] == "failed"},
        sampler_loads_per_process=loads,
        sampler=next((r["sampler"] for r in sorted(results, key=lambda r: r["clip_id"]) if r.get("sampler")), None))


def generate_split(jobs: Sequence[ClipJob], spec: SamplerSpec, out_dir: str | Path, *, workers: int = 0,
                   scheduler: str | None = None, progress: bool = True) -> GenerationSummary:
    """Generate every job's clip into ``out_dir``: in this process (``workers=0``, no scheduler), on a LocalCluster
    of ``workers`` one-thread processes, or on the Dask cluster at ``scheduler``.

    With ``spec.use_gpu`` each task asks for ``resources={"GPU": 1}`` and every worker is checked for CUDA before
    any task is sent. A task that raises anything but a per-clip failure stops the run (remaining tasks cancelled).
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(jobs), desc="generating", unit="clip", disable=not progress)
    results: list[dict[str, Any]] = []
    try:
        if workers == 0 and scheduler is None:
            if spec.use_gpu:
                check_gpu()
            for job in jobs:
                results.append(generate_one(spec, job, str(out)))
                bar.update(1)
            return _summarise(out, results)
        results = _generate_on_dask(jobs, spec, out, workers, scheduler, bar)
        return _summarise(out, results)
    finally:
        bar.close()


def _generate_on_dask(jobs: Sequence[ClipJob], spec: SamplerSpec, out: Path, workers: int, scheduler: str | None,
                      bar: Any) -> list[dict[str, Any]]:
    from distributed import Client, as_completed

    cluster = None
    if scheduler is None:
        cluster = _local_cluster(workers, spec.use_gpu)
        client = Client(cluster)
    else:
        client = Client(scheduler)
    results: list[dict[str, Any]] = []
    futures: list[Any] = []
    try:
        resources = {"GPU": 1} if spec.use_gpu else None
        if spec.use_gpu:
            gpu_workers = [addr for addr, info in client.scheduler_info()["workers"].items()
                           if info.get("resources", {}).get("GPU")]
            if not gpu_workers:
                raise GpuUnavailableError("GPU generation was asked for but no worker of the cluster advertises "
                                          "GPU resources; start workers with --resources GPU=1")
            client.run(check_gpu, workers=gpu_workers)
        futures = [client.submit(generate_one, spec, job, str(out), key=f"generate-{job.clip_id}-{spec.seed}",
                                 pure=False, resources=resources) for job in jobs]
        for fut in as_completed(futures):
            results.append(fut.result())  # a set-up error or bug re-raises here and stops the run
            bar.update(1)
    finally:
        for f in futures:
            f.cancel()
        client.close()
        if cluster is not None:
            cluster.close()
    return results


def _local_cluster(workers: int, use_gpu: bool) -> Any:
    """One-thread worker processes; with GPUs one worker per CUDA device, each advertising ``GPU=1``."""
    import dask
    from distributed import LocalCluster

    if workers < 1:
        raise SetupError(f"--workers must be >= 1 for a local cluster, got {workers}")
    from dicetalk_bench.allocator import parent_environ_kept, retained_memory_environ

    # the same worker environment as the preprocessing cluster (Dask's nanny also copies it into this process)
    spawn_env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    spawn_env.update(retained_memory_environ())
    with parent_environ_kept():  # the workers' settings never stay in this process (torch threads here)
        os.environ["DICETALK_BENCH_WORKER"] = "1"  # inherited by the worker processes: one torch thread each
        with dask.config.set({"distributed.worker.daemon": False, "distributed.nanny.pre-spawn-environ": spawn_env}):
            return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                resources={"GPU": 1} if use_gpu else None)
