"""Leaderboard benchmark: what does a bootstrap CI cost relative to computing the metric once?

Baseline: one FID from stored per-video features (1024-d to keep the run short, 12 videos x 25 frames) against
a fixed reference set, through the statistic the leaderboard uses (``leaderboard.set_statistic``). Measured:
``bootstrap_set_ci`` with 5 resamples of the videos (expected ratio about 5: the CI costs one recomputation,
two eigendecompositions, per resample, linear in ``--set-resamples``), and the per-video-metric CI
(``bootstrap_mean_ci``, 1000 resamples of 1000 videos) against the same FID baseline. Ratios (measured /
baseline, same run) go to ``extra_info`` and the log.

Run: ``python -m pytest benchmarks/bench_reports.py --benchmark-only``
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from dicetalk_bench.metrics.result import MetricResult
from dicetalk_bench.reports.bootstrap import bootstrap_mean_ci, bootstrap_set_ci
from dicetalk_bench.reports.leaderboard import set_statistic

logger = logging.getLogger(__name__)
_MEANS: dict[str, float] = {}


@pytest.fixture(scope="module")
def fid_result() -> MetricResult:
    rng = np.random.default_rng(0)
    gen = {f"g{i:02d}": rng.normal(0.1, 1.0, (25, 1024)).astype(np.float32) for i in range(12)}
    ref = {f"r{i:02d}": rng.normal(0.0, 1.0, (25, 1024)).astype(np.float32) for i in range(12)}
    return MetricResult(key="fid", value=0.0, higher_is_better=False, n_videos=12, features=gen,
                        reference_features=ref)


def _record(benchmark, name: str) -> None:
    _MEANS[name] = benchmark.stats.stats.mean
    if name != "baseline" and "baseline" in _MEANS:
        ratio = _MEANS[name] / _MEANS["baseline"]
        benchmark.extra_info["ratio_vs_one_fid"] = ratio
        logger.info("%s: %.2fx one FID computation", name, ratio)


def test_baseline_one_fid(benchmark, fid_result):
    stat = set_statistic(fid_result)
    pooled = np.concatenate([fid_result.features[k] for k in sorted(fid_result.features)])
    benchmark.pedantic(stat, args=(pooled,), rounds=3, iterations=1)
    _record(benchmark, "baseline")


def test_fid_bootstrap_5_resamples(benchmark, fid_result):
    stat = set_statistic(fid_result)
    benchmark.pedantic(bootstrap_set_ci, args=(fid_result.features, stat), kwargs={"n_resamples": 5},
                       rounds=1, iterations=1)
    _record(benchmark, "fid_bootstrap_5")


def test_per_video_bootstrap_1000x1000(benchmark):
    values = np.random.default_rng(0).normal(size=1000)
    benchmark.pedantic(bootstrap_mean_ci, args=(values,), kwargs={"n_resamples": 1000}, rounds=3, iterations=1)
    _record(benchmark, "mean_bootstrap_1000")
