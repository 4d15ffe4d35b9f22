"""Leaderboard build at paper size: 10 methods x 8 metrics, stored intervals vs ``--recompute-intervals``.

Setup: one dataset, 10 methods, each with FID and KID (256-d features of 12 videos x 25 frames; the reference set of
12 videos shared), FVD (128-d, 2 clips per video) and five per-video metrics over 1000 videos (PSNR, SSIM, LPIPS,
Sync-C, CSIM), every interval stored as at scoring time (:func:`dicetalk_bench.metrics.intervals.interval_for`). The
feature sizes are below the real ones (2048-d FID, 400-d FVD) so that the recomputing build ends in minutes on a
shared 2-core CPU; it is still the slow side by far.

- ``stored``: what ``evaluate leaderboard`` does by default -- ``find_runs`` without features, ``build_tables``,
  ``write_leaderboard`` (page, JSON, CSV, LaTeX, raw copies) -- the baseline; goal: under 10 s;
- ``recompute``: the same with ``BootstrapConfig(recompute=True, set_resamples=10)`` (features loaded; 1000
  per-video resamples per cell, and 10 set resamples instead of the default 100 so that it ends in minutes: the
  ratio is a lower bound, the default costs about 10x more in the set metrics); goal: at least 20x the stored
  build.

Ratios go to ``extra_info`` and the log. Run: ``python -m pytest benchmarks/bench_leaderboard.py --benchmark-only``
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest

from dicetalk_bench.metrics.intervals import interval_for
from dicetalk_bench.metrics.kid import kernel_inception_distance
from dicetalk_bench.metrics.result import MetricResult
from dicetalk_bench.reports.leaderboard import BootstrapConfig, build_tables
from dicetalk_bench.reports.per_emotion import frechet_of
from dicetalk_bench.reports.render import write_leaderboard
from dicetalk_bench.reports.runs import find_runs, write_run

logger = logging.getLogger(__name__)
_MEANS: dict[str, float] = {}
METHODS, VIDEOS, FRAMES, PER_VIDEO = 10, 12, 25, 1000
FID_DIM, FVD_DIM = 256, 128
PER_VIDEO_METRICS = (("psnr", True, 30.0), ("ssim", True, 0.8), ("lpips", False, 0.2), ("sync-c", True, 6.0),
                     ("csim", True, 0.7))


def _set_results(rng: np.random.Generator, ref_fid: dict, ref_fvd: dict, shift: float) -> list[MetricResult]:
    gen = {f"v{i:04d}": rng.normal(shift, 1.0, (FRAMES, FID_DIM)).astype(np.float32) for i in range(VIDEOS)}
    clips = {f"v{i:04d}": rng.normal(shift, 1.0, (2, FVD_DIM)).astype(np.float32) for i in range(VIDEOS)}
    pooled = np.concatenate([gen[k] for k in sorted(gen)])
    ref = np.concatenate([ref_fid[k] for k in sorted(ref_fid)])
    subsets = {"subset_size": 100, "n_subsets": 10, "seed": 0}
    kid = kernel_inception_distance(ref, pooled, n_subsets=10, subset_size=100, seed=0).mean
    fvd = frechet_of(np.concatenate([clips[k] for k in sorted(clips)]),
                     np.concatenate([ref_fvd[k] for k in sorted(ref_fvd)]))
    common = {"higher_is_better": False, "n_videos": VIDEOS}
    return [MetricResult(key="fid", value=frechet_of(pooled, ref), features=gen, reference_features=ref_fid,
                         **common),
            MetricResult(key="kid", value=kid, protocol=subsets, features=gen, reference_features=ref_fid, **common),
            MetricResult(key="fvd", value=fvd, features=clips, reference_features=ref_fvd, **common)]


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("bench_leaderboard") / "results"
    ref_fid = {f"r{i:02d}": rng.normal(0.0, 1.0, (FRAMES, FID_DIM)).astype(np.float32) for i in range(VIDEOS)}
    ref_fvd = {f"r{i:02d}": rng.normal(0.0, 1.0, (2, FVD_DIM)).astype(np.float32) for i in range(VIDEOS)}
    for m in range(METHODS):
        results = _set_results(rng, ref_fid, ref_fvd, 0.02 * m)
        for key, higher, centre in PER_VIDEO_METRICS:
            values = {f"v{i:04d}": float(x) for i, x in enumerate(rng.normal(centre, 0.1 * centre, PER_VIDEO))}
            results.append(MetricResult(key=key, value=float(np.mean(list(values.values()))), higher_is_better=higher,
                                        n_videos=PER_VIDEO, per_video=values))
        # stored intervals (the build only reads them; 10 set resamples keep the setup short)
        stored = [dataclasses.replace(r, interval=interval_for(r, set_resamples=10)) for r in results]
        write_run(stored, root / "mead" / f"m{m}.json", method=f"method {m}",
                  dataset="mead", provenance={"command_line": ["python", "-m", "dicetalk_bench.evaluate"]})
    return root


def _record(benchmark, name: str, baseline: str) -> None:
    _MEANS[name] = benchmark.stats.stats.mean
    if name != baseline and baseline in _MEANS:
        ratio = _MEANS[name] / _MEANS[baseline]
        benchmark.extra_info[f"ratio_vs_{baseline}"] = ratio
        logger.info("%s: %.1fx %s", name, ratio, baseline)


def _build(results_dir, out, boot: BootstrapConfig):
    runs = find_runs(results_dir, load_features=boot.recompute)
    tables = build_tables(runs, boot)
    write_leaderboard(tables, out, boot)
    return tables


def test_build_with_stored_intervals(benchmark, results_dir, tmp_path):
    tables = benchmark.pedantic(_build, args=(results_dir, tmp_path / "site", BootstrapConfig()), rounds=3,
                                iterations=1)
    assert len(tables[0].rows) == METHODS and len(tables[0].columns) == 8
    assert all(c.ci is not None for r in tables[0].rows for c in r.cells.values())
    benchmark.extra_info["seconds"] = benchmark.stats.stats.mean
    _record(benchmark, "stored", "stored")


def test_build_recomputing_intervals(benchmark, results_dir, tmp_path):
    boot = BootstrapConfig(recompute=True, set_resamples=10)
    tables = benchmark.pedantic(_build, args=(results_dir, tmp_path / "site", boot), rounds=1, iterations=1)
    assert all(c.ci is not None for r in tables[0].rows for c in r.cells.values())
    _record(benchmark, "recompute", "stored")
