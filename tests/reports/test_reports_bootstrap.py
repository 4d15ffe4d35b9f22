"""Bootstrap confidence intervals: closed forms, determinism, failure modes."""

from __future__ import annotations

import numpy as np
import pytest

from dicetalk_bench.reports.bootstrap import bootstrap_mean_ci, bootstrap_set_ci, percentile_interval


def test_constant_per_video_values_give_a_zero_width_interval():
    lo, hi = bootstrap_mean_ci([3.25] * 17, n_resamples=200, seed=0)
    assert lo == hi == pytest.approx(3.25, abs=1e-12)


def test_same_seed_same_interval_and_another_seed_differs():
    x = np.random.default_rng(1).normal(size=30)
    a = bootstrap_mean_ci(x, n_resamples=500, seed=7)
    assert a == bootstrap_mean_ci(list(x), n_resamples=500, seed=7)
    assert a != bootstrap_mean_ci(x, n_resamples=500, seed=8)


def test_interval_matches_normal_theory_for_many_videos():
    # For n iid values the 95% interval of the mean is about mean +- 1.96 s / sqrt(n) (CLT).
    x = np.random.default_rng(0).exponential(2.0, size=400)
    lo, hi = bootstrap_mean_ci(x, n_resamples=4000, seed=0)
    half = 1.959964 * x.std(ddof=1) / np.sqrt(x.size)
    assert lo < x.mean() < hi
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)
    assert (lo + hi) / 2 == pytest.approx(x.mean(), abs=0.15 * half)


def test_two_valued_sample_interval_is_within_the_value_range():
    lo, hi = bootstrap_mean_ci([0.0, 1.0], n_resamples=1000, seed=0)
    # resample means can only be 0, 0.5 or 1 (probabilities 1/4, 1/2, 1/4): 2.5% and 97.5% quantiles are 0 and 1
    assert (lo, hi) == (0.0, 1.0)


def test_percentile_interval_on_known_sample():
    lo, hi = percentile_interval(np.arange(101.0), 0.9)
    assert (lo, hi) == pytest.approx((5.0, 95.0), abs=1e-9)


@pytest.mark.parametrize("values, match", [([1.0], "at least 2"), ([1.0, float("nan")], "NaN"), ([], "at least 2")])
def test_bad_per_video_values_are_refused(values, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_mean_ci(values)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean_ci([1.0, 2.0], level=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_mean_ci([1.0, 2.0], n_resamples=0)


def test_set_interval_over_identical_videos_has_zero_width():
    feats = {f"v{i}": np.ones((3, 4), np.float32) * 2 for i in range(5)}
    lo, hi = bootstrap_set_ci(feats, lambda x: float(x.mean()), n_resamples=50, seed=0)
    assert lo == hi == 2.0


def test_set_interval_resamples_whole_videos_and_ignores_dict_order():
    rng = np.random.default_rng(0)
    feats = {f"v{i}": rng.normal(i, 1.0, size=(i + 2, 3)) for i in range(6)}
    stat = lambda x: float(x[:, 0].mean())  # noqa: E731
    a = bootstrap_set_ci(feats, stat, n_resamples=300, seed=3)
    b = bootstrap_set_ci(dict(reversed(list(feats.items()))), stat, n_resamples=300, seed=3)
    assert a == b
    pooled = stat(np.concatenate([feats[k] for k in sorted(feats)]))
    assert a[0] < pooled < a[1]
    # a resample of whole videos can never leave the range of the per-video means
    means = [float(v[:, 0].mean()) for v in feats.values()]
    assert min(means) <= a[0] and a[1] <= max(means)


def test_set_interval_needs_two_videos():
    with pytest.raises(ValueError, match="at least 2 videos"):
        bootstrap_set_ci({"a": np.ones((2, 2))}, lambda x: 0.0)
