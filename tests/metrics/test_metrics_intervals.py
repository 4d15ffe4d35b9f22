"""Intervals over videos: closed forms, determinism, failure modes, and coverage by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from dicetalk_bench.metrics.frechet import frechet_distance_raw
from dicetalk_bench.metrics.intervals import (
    METHOD_MEAN, METHOD_SET, SET_RESAMPLES, FrechetToReference, frechet_resamples, frechet_statistic, interval_for,
    mean_interval, percentile_interval, resample_counts, set_interval, set_interval_from_resamples,
    weighted_moments)
from dicetalk_bench.metrics.result import MetricResult

# ------------------------------------------------------------------------------------------- per-video means


def test_constant_per_video_values_give_a_zero_width_interval():
    lo, hi = mean_interval([3.25] * 17, n_resamples=200, seed=0)
    assert lo == hi == pytest.approx(3.25, abs=1e-12)


def test_same_seed_same_interval_and_another_seed_differs():
    x = np.random.default_rng(1).normal(size=30)
    a = mean_interval(x, n_resamples=500, seed=7)
    assert a == mean_interval(list(x), n_resamples=500, seed=7)
    assert a != mean_interval(x, n_resamples=500, seed=8)


def test_mean_interval_matches_normal_theory_for_many_videos():
    # For n iid values the 95% interval of the mean is about mean +- 1.96 s / sqrt(n) (CLT).
    x = np.random.default_rng(0).exponential(2.0, size=400)
    lo, hi = mean_interval(x, n_resamples=4000, seed=0)
    half = 1.959964 * x.std(ddof=1) / np.sqrt(x.size)
    assert lo < x.mean() < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)
    assert (lo + hi) / 2 == pytest.approx(x.mean(), abs=0.15 * half)


def test_two_valued_sample_interval_is_within_the_value_range():
    lo, hi = mean_interval([0.0, 1.0], n_resamples=1000, seed=0)
    # resample means can only be 0, 0.5 or 1 (probabilities 1/4, 1/2, 1/4): 2.5% and 97.5% quantiles are 0 and 1
    assert (lo, hi) == (0.0, 1.0)


def test_percentile_interval_on_known_sample():
    assert percentile_interval(np.arange(101.0), 0.9) == pytest.approx((5.0, 95.0), abs=1e-9)


@pytest.mark.parametrize("values, match", [([1.0], "at least 2"), ([1.0, float("nan")], "NaN"), ([], "at least 2")])
def test_bad_per_video_values_are_refused(values, match):
    with pytest.raises(ValueError, match=match):
        mean_interval(values)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="level"):
        mean_interval([1.0, 2.0], level=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        mean_interval([1.0, 2.0], n_resamples=0)


# ------------------------------------------------------------------------------------------- set metrics: parts


def test_resample_counts_are_multiplicities_of_seeded_draws():
    c = resample_counts(7, 50, seed=3)
    assert c.shape == (50, 7) and np.all(c.sum(axis=1) == 7) and np.all(c >= 0)
    assert np.array_equal(c, resample_counts(7, 50, seed=3))
    draws = np.random.default_rng(3).integers(0, 7, size=(50, 7))
    assert np.array_equal(c[4], np.bincount(draws[4], minlength=7))


@pytest.mark.parametrize("memory_bytes", [1 << 40, 0])  # all resamples in one product / one product per resample
def test_weighted_moments_equal_the_moments_of_stacked_duplicates(memory_bytes):
    rng = np.random.default_rng(0)
    videos = [rng.normal(size=(int(k), 5)) + 3.0 for k in rng.integers(2, 6, size=6)]
    counts = resample_counts(len(videos), 4, seed=1)
    mu, cov = weighted_moments(videos, counts, memory_bytes=memory_bytes)
    for r, row in enumerate(counts):
        stacked = np.concatenate([videos[k] for k in np.repeat(np.arange(len(videos)), row)])
        np.testing.assert_allclose(mu[r], stacked.mean(axis=0), atol=1e-12)
        np.testing.assert_allclose(cov[r], np.cov(stacked, rowvar=False, ddof=1), atol=1e-12)


def test_batched_frechet_equals_the_metric_formula():
    rng = np.random.default_rng(2)
    d = 6
    a, b = rng.normal(size=(40, d)), rng.normal(size=(3, 30, d)) * 1.5 + 0.3
    mu_r, cov_r = a.mean(0), np.cov(a, rowvar=False)
    mus, covs = b.mean(axis=1), np.stack([np.cov(x, rowvar=False) for x in b])
    got = FrechetToReference(mu_r, cov_r)(mus, covs)
    want = [frechet_distance_raw(mus[i], covs[i], mu_r, cov_r) for i in range(3)]
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_small_set_gram_path_equals_the_covariance_path():
    rng = np.random.default_rng(6)
    d = 12
    videos = [rng.normal(size=(2, d)) + i * 0.1 for i in range(5)]  # 10 frames < 12 dimensions: the Gram path
    ref = rng.normal(size=(60, d))
    counts = resample_counts(len(videos), 6, seed=2)
    mu_r, cov_r = _moments(ref)
    want = FrechetToReference(mu_r, cov_r)(*weighted_moments(videos, counts))
    # rtol 1e-6: the (d x d) path has d - F zero eigenvalues that come out ~1e-15, and sqrt(1e-15) ~ 3e-8 each
    np.testing.assert_allclose(frechet_resamples(videos, mu_r, cov_r, counts), want, rtol=1e-6)


def test_set_interval_of_identical_videos_has_zero_width_at_the_value():
    feats = {f"v{i}": np.tile(np.arange(4.0), (3, 1)) + np.arange(3.0)[:, None] for i in range(5)}
    ref = np.random.default_rng(0).normal(size=(50, 4))
    observed = float(frechet_distance_raw(*_moments(np.concatenate(list(feats.values()))), *_moments(ref)))
    lo, hi = set_interval(feats, observed, resampled=frechet_statistic(*_moments(ref)), n_resamples=20, seed=0)
    assert lo == pytest.approx(observed, abs=1e-9) and hi == pytest.approx(observed, abs=1e-9)


def test_set_interval_does_not_depend_on_dict_order_and_needs_two_videos():
    rng = np.random.default_rng(4)
    feats = {f"v{i}": rng.normal(size=(3, 4)) for i in range(6)}
    ref = rng.normal(size=(40, 4))
    stat = frechet_statistic(*_moments(ref))
    a = set_interval(feats, 1.0, resampled=stat, n_resamples=30, seed=1)
    assert a == set_interval(dict(reversed(list(feats.items()))), 1.0, resampled=stat, n_resamples=30, seed=1)
    with pytest.raises(ValueError, match="at least 2 videos"):
        set_interval({"v0": feats["v0"]}, 1.0, resampled=stat)


def test_bias_centred_interval_closed_form():
    stats = np.arange(101.0) + 10.0  # mean 60, 5% / 95% quantiles 15 / 105
    assert set_interval_from_resamples(50.0, stats, 0.9) == pytest.approx((50.0 - 45.0, 50.0 + 45.0))
    skewed = np.concatenate([np.zeros(90), np.full(11, 100.0)])  # mean ~10.9, q05 = 0, q95 = 100
    lo, hi = set_interval_from_resamples(5.0, skewed, 0.9)
    m = skewed.mean()
    assert (lo, hi) == pytest.approx((5.0 - (100.0 - m), 5.0 + m))


def test_interval_for_a_stored_result_picks_the_method_by_what_the_result_holds():
    rng = np.random.default_rng(5)
    per_video = MetricResult(key="psnr", value=30.0, higher_is_better=True, n_videos=3,
                             per_video={"a": 29.0, "b": 30.0, "c": 31.0})
    rec = interval_for(per_video, seed=2)
    assert rec["method"] == METHOD_MEAN and rec["level"] == 0.95 and rec["seed"] == 2 and 29 <= rec["low"] <= 30
    gen = {f"g{i}": rng.normal(size=(4, 3)) + 0.5 for i in range(8)}
    ref = {f"r{i}": rng.normal(size=(4, 3)) for i in range(8)}
    ref_all = np.concatenate([ref[k] for k in sorted(ref)])
    value = frechet_distance_raw(*_moments(np.concatenate([gen[k] for k in sorted(gen)])), *_moments(ref_all))
    fid = MetricResult(key="fid", value=value, higher_is_better=False, n_videos=8, features=gen,
                       reference_features=ref)
    rec = interval_for(fid, seed=0)
    assert rec["method"] == METHOD_SET and rec["n_resamples"] == SET_RESAMPLES
    want = set_interval(gen, value, resampled=frechet_statistic(*_moments(ref_all)), n_resamples=SET_RESAMPLES)
    assert (rec["low"], rec["high"]) == pytest.approx(want)
    assert interval_for(MetricResult(key="fid", value=1.0, higher_is_better=False, n_videos=1)) is None


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return x.mean(axis=0), np.cov(x, rowvar=False, ddof=1)


# ------------------------------------------------------------------------------------------- coverage simulation

DIM, FRAMES, EXPERIMENTS, TRUTH_DRAWS = 64, 8, 200, 2000


def _population(rng: np.random.Generator, mean_scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (d,), Cholesky factors of the between-video and within-video covariances (known)."""
    def chol(scale: float) -> np.ndarray:
        a = rng.normal(size=(DIM, DIM)) / np.sqrt(DIM)
        return np.linalg.cholesky(scale * (a @ a.T + 0.2 * np.eye(DIM)))
    return rng.normal(size=DIM) * mean_scale, chol(0.5), chol(1.0)


def _draw(rng: np.random.Generator, pop: tuple, n_videos: int, n_sets: int = 1) -> np.ndarray:
    """(n_sets, n_videos, FRAMES, d): each video = population mean + its own offset + per-frame noise."""
    mu, between, within = pop
    offsets = rng.normal(size=(n_sets, n_videos, 1, DIM)) @ between.T
    return mu + offsets + rng.normal(size=(n_sets, n_videos, FRAMES, DIM)) @ within.T


def _set_fids(sets: np.ndarray, fd: FrechetToReference) -> np.ndarray:
    x = sets.reshape(len(sets), -1, DIM)
    mu = x.mean(axis=1)
    xc = x - mu[:, None]
    cov = np.swapaxes(xc, 1, 2) @ xc / (x.shape[1] - 1)
    return fd(mu, cov)


@pytest.mark.parametrize("n_videos", [50, 200])
def test_interval_covers_the_expected_fid_at_its_nominal_rate_and_the_old_one_does_not(n_videos):
    rng = np.random.default_rng(n_videos)
    generated, reference_pop = _population(rng, 0.15), _population(rng, 0.0)
    ref = _draw(rng, reference_pop, 500)[0].reshape(-1, DIM)  # one fixed reference set, 4000 frames
    mu_r, cov_r = _moments(ref)
    fd = FrechetToReference(mu_r, cov_r)
    truth = np.concatenate([_set_fids(_draw(rng, generated, n_videos, 100), fd)
                            for _ in range(TRUTH_DRAWS // 100)]).mean()  # E[FID_n] over fresh sets of n videos
    covered_new = covered_old = 0
    for e in range(EXPERIMENTS):
        videos = list(_draw(rng, generated, n_videos)[0])
        observed = float(_set_fids(np.stack(videos)[None], fd)[0])
        counts = resample_counts(n_videos, SET_RESAMPLES, seed=e)
        stats = frechet_resamples(videos, mu_r, cov_r, counts)
        lo, hi = set_interval_from_resamples(observed, stats, 0.95)
        if e == 0:  # the shared resamples are exactly what the library's set_interval computes
            feats = {f"v{i:03d}": v for i, v in enumerate(videos)}
            assert set_interval(feats, observed, resampled=frechet_statistic(mu_r, cov_r),
                                n_resamples=SET_RESAMPLES, seed=e) == pytest.approx((lo, hi), rel=1e-9)
        old_lo, old_hi = percentile_interval(stats, 0.95)  # the with-replacement percentile interval
        covered_new += lo <= truth <= hi
        covered_old += old_lo <= truth <= old_hi
    coverage_new, coverage_old = covered_new / EXPERIMENTS, covered_old / EXPERIMENTS
    print(f"n={n_videos}: E[FID_n]={truth:.3f}; coverage bias-centred {coverage_new:.3f}, "
          f"with-replacement percentile {coverage_old:.3f}")
    assert coverage_new >= 0.90
    assert coverage_old < 0.95
