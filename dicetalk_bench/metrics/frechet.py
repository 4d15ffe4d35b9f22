"""Fréchet distance between Gaussians fitted to feature sets (shared by FID, FVD and E-FID).

FD = ||mu1 - mu2||^2 + tr S1 + tr S2 - 2 tr((S1 S2)^(1/2))   (Dowson & Landau 1982; Heusel et al. 2017).

The trace of the matrix square root is computed through symmetric eigendecompositions in float64 (the TF-GAN
``trace_sqrt_product`` idea): with A = S1^(1/2) from ``eigh(S1)``, S1 S2 is similar to
the PSD matrix M = A S2 A, so tr((S1 S2)^(1/2)) = sum_i sqrt(lambda_i(M)). Unlike ``scipy.linalg.sqrtm`` this never
goes complex, does not change behaviour across scipy versions (scipy#19415, #23278; sqrtm(disp=) removed in 1.18),
and stays finite on rank-deficient covariances. Eigenvalues below zero (round-off) are clamped to 0, and a final
distance below zero (round-off, e.g. FD(X, X)) is clamped to 0 with the raw value logged.

Statistics are kept as float64 running sums (sum x, sum x x^T, N), mergeable across shards; the covariance uses
ddof=1 like pytorch-fid, torch-fidelity and torchmetrics (StyleGAN-V uses ddof=0).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class FeatureStats:
    """Streaming float64 sufficient statistics of a set of d-dimensional features.

    ``total`` (d,) = sum of x, ``total_outer`` (d, d) = sum of x x^T, ``n`` = number of samples. Mergeable:
    stats of a union are the sums of the parts' stats (:meth:`merge`).
    """

    dim: int
    n: int = 0
    total: np.ndarray | None = None
    total_outer: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"FeatureStats: dim must be >= 1, got {self.dim}")
        if self.total is None:
            self.total = np.zeros(self.dim, dtype=np.float64)
        if self.total_outer is None:
            self.total_outer = np.zeros((self.dim, self.dim), dtype=np.float64)
        self.total = np.asarray(self.total, dtype=np.float64)
        self.total_outer = np.asarray(self.total_outer, dtype=np.float64)
        if self.total.shape != (self.dim,) or self.total_outer.shape != (self.dim, self.dim):
            raise ValueError(f"FeatureStats: sums have shapes {self.total.shape}, {self.total_outer.shape}; "
                             f"expected ({self.dim},) and ({self.dim}, {self.dim})")

    def update(self, features: np.ndarray) -> FeatureStats:
        """Add a batch of features, (N, d) (any float dtype; accumulated in float64). Returns self."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"FeatureStats.update: expected features of shape (N, {self.dim}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("FeatureStats.update: features contain NaN or inf (the extractor diverged?)")
        self.n += x.shape[0]
        self.total += x.sum(axis=0)
        self.total_outer += x.T @ x
        return self

    def merge(self, other: FeatureStats) -> FeatureStats:
        """A new FeatureStats for the union of the two sets."""
        if other.dim != self.dim:
            raise ValueError(f"FeatureStats.merge: dims differ ({self.dim} vs {other.dim})")
        return FeatureStats(self.dim, self.n + other.n, self.total + other.total,
                            self.total_outer + other.total_outer)

    @classmethod
    def from_features(cls, features: np.ndarray) -> FeatureStats:
        x = np.asarray(features)
        if x.ndim != 2:
            raise ValueError(f"FeatureStats.from_features: expected (N, d), got {x.shape}")
        return cls(x.shape[1]).update(x)

    def mean(self) -> np.ndarray:
        """(d,) float64 sample mean."""
        if self.n < 1:
            raise ValueError("FeatureStats.mean: no samples")
        return self.total / self.n

    def cov(self, ddof: int = 1) -> np.ndarray:
        """(d, d) float64 sample covariance, (sum x x^T - N mu mu^T) / (N - ddof)."""
        if self.n - ddof < 1:
            raise ValueError(f"FeatureStats.cov: need more than {ddof} samples, have {self.n}")
        mu = self.mean()
        c = (self.total_outer - self.n * np.outer(mu, mu)) / (self.n - ddof)
        return (c + c.T) / 2.0

    def save(self, path: str | Path) -> None:
        """Write to an .npz (float64 sums and n)."""
        np.savez(path, n=np.int64(self.n), total=self.total, total_outer=self.total_outer)

    @classmethod
    def load(cls, path: str | Path) -> FeatureStats:
        with np.load(path) as z:
            total = z["total"]
            return cls(int(total.shape[0]), int(z["n"]), total, z["total_outer"])


def sqrtm_psd(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix through ``eigh`` (negative eigenvalues clamped to 0)."""
    c = np.asarray(cov, dtype=np.float64)
    w, v = np.linalg.eigh((c + c.T) / 2.0)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(cov1: np.ndarray, cov2: np.ndarray) -> float:
    """tr((S1 S2)^(1/2)) for symmetric PSD S1, S2, as sum sqrt(eig(A S2 A)) with A = S1^(1/2) (float64)."""
    a = sqrtm_psd(cov1)
    m = a @ np.asarray(cov2, dtype=np.float64) @ a
    m = (m + m.T) / 2.0
    lam = np.linalg.eigvalsh(m)
    return float(np.sqrt(np.clip(lam, 0.0, None)).sum())


def frechet_distance_raw(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """The Fréchet distance before clamping (may be slightly negative from round-off)."""
    mu1 = np.asarray(mu1, dtype=np.float64)
    mu2 = np.asarray(mu2, dtype=np.float64)
    cov1 = np.asarray(cov1, dtype=np.float64)
    cov2 = np.asarray(cov2, dtype=np.float64)
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise ValueError(f"frechet_distance: shapes mu1 {mu1.shape}, cov1 {cov1.shape}, mu2 {mu2.shape}, "
                         f"cov2 {cov2.shape} do not agree")
    for name, arr in (("mu1", mu1), ("mu2", mu2), ("cov1", cov1), ("cov2", cov2)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"frechet_distance: {name} contains NaN or inf")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt_product(cov1, cov2))


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2); (d,) means, (d, d) covariances; >= 0."""
    raw = frechet_distance_raw(mu1, cov1, mu2, cov2)
    if raw < 0.0:
        logger.info("Fréchet distance %.6g < 0 from round-off; clamped to 0", raw)
        return 0.0
    return raw


def frechet_distance_from_stats(stats1: FeatureStats, stats2: FeatureStats, ddof: int = 1) -> float:
    """Fréchet distance between the Gaussians fitted to two :class:`FeatureStats`."""
    if stats1.dim != stats2.dim:
        raise ValueError(f"frechet_distance_from_stats: feature dims differ ({stats1.dim} vs {stats2.dim})")
    return frechet_distance(stats1.mean(), stats1.cov(ddof), stats2.mean(), stats2.cov(ddof))
