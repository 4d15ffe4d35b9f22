"""Leaderboard benchmark: building a page from stored intervals vs recomputing them, and what one interval costs.

Setup: a results folder of 4 methods on one dataset, each with a FID (1024-d features, 12 videos x 25 frames, one
shared reference set of 12 videos) and a per-video PSNR (1000 videos), intervals stored at scoring time
(:func:`dicetalk_bench.metrics.intervals.with_interval`).

- ``stored``: ``find_runs`` without features + ``build_tables`` with the default settings (reads the stored
  intervals) -- the baseline;
- ``recompute``: ``find_runs`` with features + ``build_tables(..., BootstrapConfig(recompute=True))`` (what
  ``--recompute-intervals`` does: 100 FID resamples and 1000 per-video resamples per method);
- ``one_fid`` / ``fid_interval``: one FID from stored features vs its 100-resample interval.

Ratios (measured / baseline, same run) go to ``extra_info`` and the log.

Run: ``python -m pytest benchmarks/bench_reports.py --benchmark-only``
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from dicetalk_bench.metrics.intervals import SET_RESAMPLES, interval_for, with_interval
from dicetalk_bench.metrics.result import MetricResult
from dicetalk_bench.reports.leaderboard import BootstrapConfig, build_tables, set_statistic
from dicetalk_bench.reports.runs import find_runs, write_run

logger = logging.getLogger(__name__)
_MEANS: dict[str, float] = {}
DIM, VIDEOS, FRAMES = 1024, 12, 25


def _fid(rng: np.random.Generator, ref: dict[str, np.ndarray], shift: float) -> MetricResult:
    gen = {f"g{i:02d}": rng.normal(shift, 1.0, (FRAMES, DIM)).astype(np.float32) for i in range(VIDEOS)}
    stat = set_statistic(MetricResult(key="fid", value=0.0, higher_is_better=False, n_videos=VIDEOS, features=gen,
                                      reference_features=ref))
    value = stat(np.concatenate([gen[k] for k in sorted(gen)]))
    return MetricResult(key="fid", value=value, higher_is_better=False, n_videos=VIDEOS, features=gen,
                        reference_features=ref)


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("bench_reports") / "results"
    ref = {f"r{i:02d}": rng.normal(0.0, 1.0, (FRAMES, DIM)).astype(np.float32) for i in range(VIDEOS)}
    for m in range(4):
        psnr_values = {f"v{i:04d}": float(x) for i, x in enumerate(rng.normal(30.0 + m, 2.0, 1000))}
        psnr = MetricResult(key="psnr", value=float(np.mean(list(psnr_values.values()))), higher_is_better=True,
                            n_videos=1000, per_video=psnr_values)
        results = [with_interval(_fid(rng, ref, 0.05 * m)), with_interval(psnr)]
        write_run(results, root / "mead" / f"m{m}.json", method=f"m{m}", dataset="mead", provenance={})
    return root


def _record(benchmark, name: str, baseline: str) -> None:
    _MEANS[name] = benchmark.stats.stats.mean
    if name != baseline and baseline in _MEANS:
        ratio = _MEANS[name] / _MEANS[baseline]
        benchmark.extra_info[f"ratio_vs_{baseline}"] = ratio
        logger.info("%s: %.1fx %s", name, ratio, baseline)


def test_leaderboard_with_stored_intervals(benchmark, results_dir):
    def build():
        return build_tables(find_runs(results_dir, load_features=False), BootstrapConfig())

    tables = benchmark.pedantic(build, rounds=3, iterations=1)
    assert all(c.ci is not None for r in tables[0].rows for c in r.cells.values())
    _record(benchmark, "stored", "stored")


def test_leaderboard_recomputing_intervals(benchmark, results_dir):
    def build():
        return build_tables(find_runs(results_dir), BootstrapConfig(recompute=True))

    tables = benchmark.pedantic(build, rounds=1, iterations=1)
    assert all(c.ci is not None for r in tables[0].rows for c in r.cells.values())
    _record(benchmark, "recompute", "stored")


def test_one_fid_from_stored_features(benchmark, results_dir):
    run = find_runs(results_dir)[0]
    fid = run.results["fid"]
    stat = set_statistic(fid)
    pooled = np.concatenate([fid.features[k] for k in sorted(fid.features)])
    benchmark.pedantic(stat, args=(pooled,), rounds=3, iterations=1)
    _record(benchmark, "one_fid", "one_fid")


def test_fid_interval_100_resamples(benchmark, results_dir):
    fid = find_runs(results_dir)[0].results["fid"]
    benchmark.pedantic(interval_for, args=(fid,), kwargs={"set_resamples": SET_RESAMPLES}, rounds=1, iterations=1)
    _record(benchmark, "fid_interval", "one_fid")
