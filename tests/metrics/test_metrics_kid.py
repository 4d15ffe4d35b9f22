"""KID: the unbiased MMD^2 estimator against a direct double-loop formula, and the subset protocol."""

from __future__ import annotations

import numpy as np
import pytest

from dicetalk_bench.metrics.kid import kernel_inception_distance, mmd2_unbiased, polynomial_kernel


def _mmd2_loops(x, y):
    d = x.shape[1]

    def k(a, b):
        return (float(a @ b) / d + 1.0) ** 3

    m, n = len(x), len(y)
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    syy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return sxx + syy - 2 * sxy


def test_mmd2_matches_direct_formula():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((9, 5)), rng.standard_normal((7, 5)) + 0.3
    assert mmd2_unbiased(x, y) == pytest.approx(_mmd2_loops(x, y), rel=1e-12)


def test_kernel_defaults_gamma_one_over_d():
    x = np.ones((1, 4))
    assert polynomial_kernel(x, x)[0, 0] == pytest.approx((4 / 4 + 1) ** 3)


def test_kid_subsets_equal_mean_of_subset_mmds():
    rng = np.random.default_rng(1)
    real, fake = rng.standard_normal((30, 6)), rng.standard_normal((25, 6)) + 0.5
    res = kernel_inception_distance(real, fake, n_subsets=4, subset_size=10, seed=3)
    g = np.random.default_rng(3)
    vals = []
    for _ in range(4):
        r = real[g.choice(30, 10, replace=False)]
        f = fake[g.choice(25, 10, replace=False)]
        vals.append(_mmd2_loops(r, f))
    assert res.mean == pytest.approx(np.mean(vals), rel=1e-10)
    assert res.std == pytest.approx(np.std(vals), rel=1e-8)
    assert (res.subset_size, res.n_subsets) == (10, 4)


def test_kid_unbiased_near_zero_for_same_distribution_and_positive_for_shift():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((400, 8)), rng.standard_normal((400, 8))
    same = kernel_inception_distance(a, b, n_subsets=10, subset_size=200)
    shifted = kernel_inception_distance(a, b + 1.0, n_subsets=10, subset_size=200)
    assert abs(same.mean) < 3 * same.std + 1e-3
    assert shifted.mean > 10 * abs(same.mean)


def test_kid_bad_inputs():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="exceeds the set sizes"):
        kernel_inception_distance(x, x, subset_size=10)
    with pytest.raises(ValueError, match="equal d"):
        kernel_inception_distance(x, np.zeros((5, 4)), subset_size=2)
    with pytest.raises(ValueError, match="at least 2"):
        mmd2_unbiased(x[:1], x)
