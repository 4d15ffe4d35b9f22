"""Running the preprocessing: sweep what a killed run left, plan, execute the tasks (serially or on Dask, with a
progress bar), rebuild the manifests, and summarise.

Execution is serial in this process (``workers=0``), on a LocalCluster of single-threaded worker processes, or on
an existing scheduler. A task that dies on its worker (or cannot be shipped) is recorded as failed; the run goes on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from .manifest import ClipSource
from .planning import plan
from .preflight import check_performance_report_deps, check_writable, preflight_weights
from .preprocess_config import PreprocessConfig, validate_config
from .run_outputs import build_outputs
from .task_records import AudioTask, VideoTask, failure_record, write_record
from .tasks import run_task

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run did: task counts, wall time (s) and the manifests it wrote."""

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

    from dicetalk_bench.allocator import parent_environ_kept, retained_memory_environ

    spawn_env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
    if retain_freed_memory:
        spawn_env.update(retained_memory_environ())
    with parent_environ_kept():  # the workers' settings never stay in this process (torch threads here)
        os.environ["DICETALK_BENCH_WORKER"] = "1"  # inherited by the worker processes
        with dask.config.set({"distributed.nanny.pre-spawn-environ": spawn_env}):
            return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)


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
                    rec = failure_record(kind, t.task_id, src, exc, t.config_hash)
                    with contextlib.suppress(OSError):
                        write_record(t.out, kind, t.task_id, rec)
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


def run(clips: Sequence[ClipSource], root: Path, out: Path, cfg: PreprocessConfig, *, workers: int = 2,
        scheduler: str | None = None, progress: bool = True, performance_report: Path | None = None,
        allow_unverified: bool = False, weights_records: dict[str, dict[str, Any]] | None = None) -> RunSummary:
    """Preprocess ``clips`` into ``out`` (resumable; see :mod:`dicetalk_bench.preprocessing.pipeline`).

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
