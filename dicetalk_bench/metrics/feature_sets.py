"""Per-video features of a set metric (FID, FVD, KID) pooled into one matrix."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import DTypeLike


def stack_features(feats: Mapping[str, np.ndarray], *, dim: int | None = None,
                   dtype: DTypeLike | None = None) -> np.ndarray:
    """The per-video features ``feats[clip_id]`` (n_i, d) stacked into one (sum n_i, d) array, in sorted clip-id
    order (so the result does not depend on the mapping's insertion order, e.g. a cache read back).

    ``dtype``: the result's dtype (None: numpy's common type of the inputs). An empty mapping gives a (0, ``dim``)
    array (float32 unless ``dtype`` says otherwise); ``dim`` is required then (ValueError without it).
    """
    if not feats:
        if dim is None:
            raise ValueError("no features to stack and no feature dimension given")
        return np.zeros((0, dim), np.float32 if dtype is None else dtype)
    return np.concatenate([np.asarray(feats[k], dtype) for k in sorted(feats)], axis=0)
