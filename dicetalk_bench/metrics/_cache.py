"""On-disk cache of per-video features of a reference set (FID/KID/FVD), keyed by everything that changes them.

The key is the sha256 of a JSON record: the reference folder's manifest hash (clip ids and file hashes), the
extractor's weights sha256 and every protocol choice (resize mode, crop, clip length, seed, ...). A cache file holds
the per-video features and the per-video failures, so statistics, KID and bootstraps can all be rebuilt from it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from dicetalk_bench.fileutil import atomic_path

logger = logging.getLogger(__name__)


def cache_key(record: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of ``record``."""
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


def cache_file(cache_dir: Path, kind: str, record: Mapping[str, Any]) -> Path:
    return Path(cache_dir) / f"{kind}-{cache_key(record)[:32]}.npz"


def save_features(path: Path, record: Mapping[str, Any], features: Mapping[str, np.ndarray],
                  failures: Mapping[str, str]) -> None:
    """Write per-video features ((n_i, d) float32 each) and failures atomically."""
    ids = list(features)
    arrays = {f"f{i}": np.asarray(features[c], dtype=np.float32) for i, c in enumerate(ids)}
    meta = json.dumps({"record": record, "clip_ids": ids, "failures": dict(failures)}, default=str)
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, meta=np.array(meta), **arrays)
    logger.info("cached reference features in %s", path)


def load_features(path: Path, record: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, str]] | None:
    """The cached (features, failures) for ``record``, or None if absent or written for another record."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            if json.loads(json.dumps(record, default=str)) != meta["record"]:
                logger.warning("cache %s was written for another record; recomputing", path)
                return None
            feats = {cid: z[f"f{i}"] for i, cid in enumerate(meta["clip_ids"])}
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("cache %s is unreadable (%s); recomputing", path, exc)
        return None
    logger.info("using cached reference features %s", path)
    return feats, dict(meta["failures"])
