"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2 with the cubic polynomial kernel.

k(x, y) = (gamma x.y + coef0)^degree with degree 3, gamma = 1/d, coef0 = 1 (torch-fidelity ``kid_*`` defaults and
the paper). The estimate is averaged over ``n_subsets`` random subsets of ``subset_size`` samples drawn without
replacement from each set (torch-fidelity defaults: 100 subsets of 1000). Unbiased, so usable at small N where FID
is strongly biased.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# torch-fidelity 0.4.0 defaults (kid_subsets, kid_subset_size, kid_degree, kid_coef0)
DEFAULT_SUBSETS = 100
DEFAULT_SUBSET_SIZE = 1000
DEFAULT_DEGREE = 3
DEFAULT_COEF0 = 1.0


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = DEFAULT_DEGREE, gamma: float | None = None,
                      coef0: float = DEFAULT_COEF0) -> np.ndarray:
    """(N, M) kernel matrix of (N, d) and (M, d) features, float64; gamma defaults to 1/d."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if gamma is None:
        gamma = 1.0 / x.shape[1]
    return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = DEFAULT_DEGREE, gamma: float | None = None,
                  coef0: float = DEFAULT_COEF0) -> float:
    """Unbiased MMD^2 between samples x (m, d) and y (n, d):
    sum_{i!=j} k(x_i,x_j)/(m(m-1)) + sum_{i!=j} k(y_i,y_j)/(n(n-1)) - 2 sum k(x_i,y_j)/(mn)."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"mmd2_unbiased: need at least 2 samples per set, got {m} and {n}")
    kxx = polynomial_kernel(x, x, degree, gamma, coef0)
    kyy = polynomial_kernel(y, y, degree, gamma, coef0)
    kxy = polynomial_kernel(x, y, degree, gamma, coef0)
    term_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    term_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(term_x + term_y - 2.0 * kxy.mean())


@dataclasses.dataclass(frozen=True)
class KIDResult:
    mean: float
    std: float
    subset_size: int
    n_subsets: int


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, *, n_subsets: int = DEFAULT_SUBSETS,
                              subset_size: int = DEFAULT_SUBSET_SIZE, seed: int = 0,
                              degree: int = DEFAULT_DEGREE, coef0: float = DEFAULT_COEF0) -> KIDResult:
    """KID between (N_r, d) and (N_f, d) features: mean and std of unbiased MMD^2 over random subsets.

    Each subset draws ``subset_size`` rows without replacement from each set with ``np.random.default_rng(seed)``.
    Raises ValueError if a set has fewer than ``subset_size`` rows (pass a smaller subset_size on purpose).
    """
    real = np.asarray(real, dtype=np.float64)
    fake = np.asarray(fake, dtype=np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"kernel_inception_distance: expected (N, d) arrays with equal d, got {real.shape} "
                         f"and {fake.shape}")
    if subset_size < 2 or n_subsets < 1:
        raise ValueError(f"kernel_inception_distance: subset_size >= 2 and n_subsets >= 1 required, got "
                         f"{subset_size}, {n_subsets}")
    if len(real) < subset_size or len(fake) < subset_size:
        raise ValueError(f"kernel_inception_distance: subset_size {subset_size} exceeds the set sizes "
                         f"({len(real)} real, {len(fake)} generated); use a smaller subset_size")
    rng = np.random.default_rng(seed)
    values = np.empty(n_subsets, dtype=np.float64)
    for i in range(n_subsets):
        r = real[rng.choice(len(real), subset_size, replace=False)]
        f = fake[rng.choice(len(fake), subset_size, replace=False)]
        values[i] = mmd2_unbiased(r, f, degree=degree, coef0=coef0)
    return KIDResult(float(values.mean()), float(values.std()), subset_size, n_subsets)
