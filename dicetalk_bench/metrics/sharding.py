"""Per-video feature extraction sharded by video over Dask workers, with the same results as the serial loop.

A metric that extracts features video by video (FVD) can hand the videos to :func:`map_videos` with a picklable
``spec`` (which weights, which protocol) and a module-level ``task(spec, clip_id, path)``. Each video is one Dask
task; each worker process builds its extractor once (:func:`cached`) and keeps it across tasks. Per-item failures
(unreadable or too short videos) are recorded on the worker with :func:`~.failures.attempt` and come back as data;
any other error (a bad weights file, a bug) re-raises in the caller and stops the run.

The local cluster is the preprocessing cluster (:func:`dicetalk_bench.preprocessing.orchestration.local_cluster`:
one-thread worker processes started with the allocator environment of :mod:`dicetalk_bench.allocator`), or the
cluster at ``scheduler``. Workers run torch with one thread. Results come back in the order of the videos given,
so features stacked from them equal the serial run's.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

from dicetalk_bench.errors import SetupError
from dicetalk_bench.metrics.failures import FailureLog, attempt

__all__ = ["Sharding", "VideoOutcome", "map_videos", "run_video", "collect", "cached"]


@dataclasses.dataclass(frozen=True)
class Sharding:
    """Where per-video extraction runs: in this process (``workers=0``, no scheduler), on a local cluster of
    ``workers`` one-thread processes, or on the Dask cluster at ``scheduler`` (e.g. ``tcp://host:8786``)."""

    workers: int = 0
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise SetupError(f"--workers must be >= 0, got {self.workers}")

    @property
    def enabled(self) -> bool:
        return self.workers > 0 or self.scheduler is not None


@dataclasses.dataclass(frozen=True)
class VideoOutcome:
    """One video's result: ``value`` (None when it failed), else the failure ``kind`` and ``reason``."""

    clip_id: str
    value: Any = None
    kind: str | None = None
    reason: str | None = None


_CACHE: dict[Hashable, Any] = {}


def cached(key: Hashable, build: Callable[[], Any]) -> Any:
    """``build()`` once per process for ``key`` (other keys' objects are dropped first, so a worker holds one
    extractor at a time)."""
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = build()
    return _CACHE[key]


def run_video(task: Callable[[Any, str, Path], Any], spec: Any, clip_id: str, path: str, what: str) -> VideoOutcome:
    """One task on a worker: ``task(spec, clip_id, path)`` with per-item failures recorded, not raised."""
    if os.environ.get("DICETALK_BENCH_WORKER") == "1":
        import torch

        torch.set_num_threads(1)
    log = FailureLog()
    value = attempt(log, clip_id, lambda: task(spec, clip_id, Path(path)), what=what)
    if value is None:
        return VideoOutcome(clip_id, kind=log.kinds[clip_id], reason=log[clip_id])
    return VideoOutcome(clip_id, value=value)


def map_videos(task: Callable[[Any, str, Path], Any], spec: Any, videos: Sequence[tuple[str, Path]],
               sharding: Sharding, *, what: str = "", progress: bool = True) -> list[VideoOutcome]:
    """Run ``task(spec, clip_id, path)`` for every ``(clip_id, path)`` of ``videos`` on Dask; outcomes in the
    order of ``videos``. ``task`` and ``spec`` must be picklable (a module-level function, a frozen dataclass)."""
    from distributed import Client, as_completed
    from tqdm.auto import tqdm

    if not sharding.enabled:
        raise ValueError("map_videos needs workers > 0 or a scheduler address")
    cluster = None
    if sharding.scheduler is None:
        from dicetalk_bench.preprocessing.orchestration import local_cluster

        cluster = local_cluster(sharding.workers)
        client = Client(cluster)
    else:
        client = Client(sharding.scheduler)
    futures: list[Any] = []
    bar = tqdm(total=len(videos), desc=f"{what} features".strip(), unit="video", disable=not progress or None,
               leave=False)
    try:
        futures = [client.submit(run_video, task, spec, cid, str(path), what, pure=False) for cid, path in videos]
        order = {f.key: i for i, f in enumerate(futures)}
        outcomes: list[VideoOutcome | None] = [None] * len(futures)
        for fut in as_completed(futures):
            outcomes[order[fut.key]] = fut.result()  # a set-up error or a bug re-raises here
            bar.update(1)
        return [o for o in outcomes if o is not None]
    finally:
        bar.close()
        for f in futures:
            f.cancel()
        client.close()
        if cluster is not None:
            cluster.close()


def collect(outcomes: Sequence[VideoOutcome]) -> tuple[dict[str, Any], FailureLog]:
    """Outcomes -> (clip id -> value in the outcomes' order, FailureLog of the failed ones)."""
    values: dict[str, Any] = {}
    failures = FailureLog()
    for o in outcomes:
        if o.kind is None:
            values[o.clip_id] = o.value
        else:
            failures.add(o.clip_id, o.kind, o.reason or "")
    return values, failures
