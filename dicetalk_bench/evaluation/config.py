"""The settings of one evaluation run (:class:`EvalConfig`) and the error a user must fix (:class:`EvaluateError`)."""

from __future__ import annotations

import dataclasses
from typing import Any

DATASETS = ("mead", "hdtf")  # the leaderboard's tabs; a method's results are filed under one of them


class EvaluateError(RuntimeError):
    """A problem the user must fix (missing folder, nothing to score, generation not available)."""


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """The resolved evaluation settings (saved beside the results; its hash goes into the provenance)."""

    method: str
    dataset: str
    metrics: tuple[str, ...]
    out: str
    videos: str | None = None
    reference: str | None = None
    checkpoint: str | None = None
    processed: str | None = None
    weights: dict[str, str] = dataclasses.field(default_factory=dict)
    allow_unverified: bool = False
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 16
    force_small_set: bool = False
    cache_dir: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    keep_going: bool = False
    sample_steps: int = 25
    max_clips: int | None = None
    frame_rate: str | None = None  # release | native; None: from the checkpoint's frame_stride
    baseline: str | None = None  # static | shuffled-audio | shifted-audio (a baseline row from the test clips)
    real: bool = False  # the ceiling row: the real test clips scored as a method
    workers: int = 0  # generation and FVD features: 0 = in this process; N = a LocalCluster of N one-thread workers
    scheduler: str | None = None  # generation and FVD features on the Dask cluster at this address
    window_batch: int | None = None  # generation: windows per network call; None: the device's default
