"""Percentile-bootstrap confidence intervals over videos (pure functions, seeded, no torch).

Two cases (docs/evaluation.md, "Uncertainty"):

- per-video metrics (PSNR, SSIM, Sync-C, ...): the score is the mean of per-video values; resample the videos with
  replacement and take the mean of each resample (:func:`bootstrap_mean_ci`);
- set metrics (FID, KID, FVD): resample the *generated* videos with replacement, pool the stored per-video features
  of the drawn videos and recompute the statistic against the fixed reference set (:func:`bootstrap_set_ci`).

The interval is the (alpha/2, 1 - alpha/2) percentile interval of the resampled statistics (Efron & Tibshirani
1993, ch. 13), with ``numpy.random.default_rng(seed)`` so the same inputs and seed give the same interval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

DEFAULT_LEVEL = 0.95
DEFAULT_RESAMPLES = 1000


def _check(n_resamples: int, level: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"bootstrap: n_resamples must be >= 1, got {n_resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"bootstrap: level must be in (0, 1), got {level}")


def percentile_interval(stats: np.ndarray, level: float = DEFAULT_LEVEL) -> tuple[float, float]:
    """(low, high) percentiles of ``stats`` (R,) bounding the central ``level`` mass."""
    stats = np.asarray(stats, dtype=np.float64)
    alpha = 1.0 - level
    lo, hi = np.quantile(stats, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def bootstrap_mean_ci(values: Sequence[float] | np.ndarray, *, n_resamples: int = DEFAULT_RESAMPLES,
                      level: float = DEFAULT_LEVEL, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of the mean of ``values`` (n,) (one value per video).

    Raises ValueError for fewer than 2 values (an interval from one video means nothing) or non-finite values.
    """
    _check(n_resamples, level)
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < 2:
        raise ValueError(f"bootstrap_mean_ci: need at least 2 per-video values, got {x.size}")
    if not np.all(np.isfinite(x)):
        raise ValueError("bootstrap_mean_ci: per-video values contain NaN or inf")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    return percentile_interval(x[idx].mean(axis=1), level)


def bootstrap_set_ci(features: Mapping[str, np.ndarray], statistic: Callable[[np.ndarray], float], *,
                     n_resamples: int = 100, level: float = DEFAULT_LEVEL, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap CI of a set statistic over videos.

    ``features`` maps clip id -> (n_i, d) features of that generated video; each resample draws len(features)
    clip ids with replacement (in sorted-id order, so dict order does not matter), stacks their rows into
    (sum n_i, d) and calls ``statistic`` on it (e.g. FID against fixed reference moments).
    """
    _check(n_resamples, level)
    ids = sorted(features)
    if len(ids) < 2:
        raise ValueError(f"bootstrap_set_ci: need features of at least 2 videos, got {len(ids)}")
    arrays = [np.asarray(features[i]) for i in ids]
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples, dtype=np.float64)
    for r in range(n_resamples):
        draw = rng.integers(0, len(ids), size=len(ids))
        stats[r] = float(statistic(np.concatenate([arrays[k] for k in draw], axis=0)))
    return percentile_interval(stats, level)
