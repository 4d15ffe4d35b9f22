"""FID and FVD per emotion: the Fréchet distance of each emotion's generated videos to that emotion's reference videos.

A set metric has no per-video value, so its per-emotion numbers are computed from the per-video features at scoring
time (``evaluate`` stores them in the result's ``extra["per_emotion"]``; the page only reads them). Each emotion
group pools the feature rows of its generated videos (frames for FID, clips for FVD) and of the reference videos of
the same emotion, and the metric's own maths gives the distance (:func:`dicetalk_bench.metrics.frechet`: float64
moments, covariance ddof 1, eigh; a negative round-off result is reported as 0, as the headline number is).

The small-set rule of the headline number holds per group: both sets of a group need at least the metric's minimum
number of feature rows (FID: ``metrics.fid.MIN_FRAMES`` = 2049 frames, for a full-rank 2048-d covariance; FVD:
``FVDConfig.min_clips`` = 401 clips, for 400-d), otherwise the group has no value and a reason such as
``"n=312 frames < 2049"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from dicetalk_bench.metrics.feature_sets import stack_features

PER_EMOTION_KEY = "per_emotion"  # key in MetricResult.extra


def min_rows(key: str) -> tuple[int, str]:
    """(minimum feature rows per set, what a row is) of a set metric: FID counts frames, FVD clips."""
    from dicetalk_bench.metrics.registry import FID, FVD

    if key == FID:
        from dicetalk_bench.metrics.fid import MIN_FRAMES

        return MIN_FRAMES, "frames"
    if key == FVD:
        from dicetalk_bench.metrics.fvd import FVDConfig

        return FVDConfig().min_clips, "clips"
    raise ValueError(f"no per-emotion rule for metric {key!r} (FID and FVD only)")


def frechet_of(gen: np.ndarray, ref: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of ``gen`` (N, d) and ``ref`` (M, d), ddof 1, clipped at 0."""
    from dicetalk_bench.metrics.frechet import FeatureStats, frechet_distance_raw

    g, r = FeatureStats.from_features(gen), FeatureStats.from_features(ref)
    return max(frechet_distance_raw(g.mean(), g.cov(ddof=1), r.mean(), r.cov(ddof=1)), 0.0)


def per_group_frechet(features: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray],
                      group_of: Mapping[str, str], *, min_size: int, unit: str = "rows") -> dict[str, dict[str, Any]]:
    """Per group: the Fréchet distance of its generated feature rows to its reference feature rows.

    ``features`` / ``reference``: clip id -> (n_i, d) features; ``group_of``: clip id -> group (an emotion); clips
    without a group are left out. Returns ``{group: {"value": float | None, "n_videos", "n_rows",
    "n_reference_videos", "n_reference_rows", "reason": str | None}}`` sorted by group; ``value`` is None with a
    ``reason`` when either set has fewer than ``min_size`` rows.
    """
    groups = sorted({group_of[c] for c in (*features, *reference) if c in group_of})
    out: dict[str, dict[str, Any]] = {}
    for g in groups:
        gen_ids = [c for c in features if group_of.get(c) == g]
        ref_ids = [c for c in reference if group_of.get(c) == g]
        n_gen = int(sum(len(features[c]) for c in gen_ids))
        n_ref = int(sum(len(reference[c]) for c in ref_ids))
        entry: dict[str, Any] = {"value": None, "n_videos": len(gen_ids), "n_rows": n_gen,
                                 "n_reference_videos": len(ref_ids), "n_reference_rows": n_ref, "reason": None}
        small = [(who, n) for who, n in (("", n_gen), ("reference ", n_ref)) if n < min_size]
        if small:
            entry["reason"] = "; ".join(f"{who}n={n} {unit} < {min_size}" for who, n in small)
        else:
            entry["value"] = frechet_of(stack_features({c: features[c] for c in gen_ids}, dtype=np.float64),
                                        stack_features({c: reference[c] for c in ref_ids}, dtype=np.float64))
        out[g] = entry
    return out


def per_emotion_record(result: Any, emotion_of: Mapping[str, str], *,
                       min_size: int | None = None) -> dict[str, Any] | None:
    """The ``extra["per_emotion"]`` record of a FID or FVD MetricResult with features in memory, or None (another
    metric, no features, or no clip with a known emotion).

    ``emotion_of``: clip id -> emotion (the clip manifest's column). ``min_size`` overrides the metric's minimum
    (:func:`min_rows`; tests use small sets).
    """
    from dicetalk_bench.metrics.registry import FID, FVD

    if result.key not in (FID, FVD) or not result.features or not result.reference_features:
        return None
    if not any(c in emotion_of for c in (*result.features, *result.reference_features)):
        return None
    need, unit = min_rows(result.key)
    need = need if min_size is None else int(min_size)
    groups = per_group_frechet(result.features, result.reference_features, emotion_of, min_size=need, unit=unit)
    return {"min_rows": need, "unit": unit, "grouping": "emotion of the clip manifest; reference videos of the same "
                                                        "emotion", "groups": groups}


def per_emotion_records(r: Any) -> dict[str, Mapping[str, Any]]:
    """metric key -> the ``extra["per_emotion"]`` record stored with a row's FID/FVD at scoring time (``r``: a
    :class:`~.leaderboard.Row`)."""
    return {k: res.extra[PER_EMOTION_KEY] for k, res in r.results.items()
            if isinstance(res.extra.get(PER_EMOTION_KEY), Mapping)}
