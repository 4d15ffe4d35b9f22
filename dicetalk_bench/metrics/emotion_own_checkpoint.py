"""The own emotion classifier's checkpoint: ``CKPT.safetensors`` (``weight`` (8, F), ``bias`` (8,),
``feature_mean`` (F,), ``feature_std`` (F,)) and ``CKPT.json`` beside it (protocol, training record, the
safetensors sha256). Writing is atomic; loading checks the sha256, the labels and the tensor shapes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .emotion_own_classifier import OwnEmotionClassifier
from .emotion_own_features import OwnEmotionProtocol

FORMAT_VERSION = 1


def _paths(ckpt: str | Path) -> tuple[Path, Path]:
    ckpt = Path(ckpt)
    if ckpt.suffix != ".safetensors":
        ckpt = ckpt.with_name(ckpt.name + ".safetensors")
    return ckpt, ckpt.with_suffix(".json")


def save_checkpoint(ckpt: str | Path, tensors: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``CKPT.safetensors`` then ``CKPT.json`` (meta + the safetensors sha256), each atomically."""
    from safetensors.numpy import save_file

    from dicetalk_bench.fileutil import atomic_path, atomic_write_bytes, sha256_file

    st_path, json_path = _paths(ckpt)
    st_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(st_path, suffix=".safetensors") as tmp:
        save_file({k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}, str(tmp),
                  metadata={"dicetalk_bench.format": f"own-emotion-v{FORMAT_VERSION}"})
    meta = dict(meta) | {"weights_file": st_path.name, "weights_sha256": sha256_file(st_path)}
    atomic_write_bytes(json_path, (json.dumps(meta, indent=2, sort_keys=False) + "\n").encode())
    return st_path, json_path


def load_own_classifier(path: str | Path) -> tuple[OwnEmotionClassifier, dict[str, Any]]:
    """Load a ``train-emotion`` checkpoint (the .safetensors or the .json path) -> (classifier, extractor record).

    The JSON's recorded sha256 must match the safetensors file. The record is ``{"key": "own-emotion", "file",
    "sha256", "calibrated": False}`` (no official hash exists for an own model; the sha256 identifies it).
    """
    from safetensors.numpy import load_file

    from dicetalk_bench.fileutil import sha256_file

    p = Path(path)
    st_path, json_path = _paths(p.with_suffix("") if p.suffix == ".json" else p)
    for f in (st_path, json_path):
        if not f.is_file():
            raise FileNotFoundError(f"own emotion classifier: {f} not found (a checkpoint is a .safetensors file and "
                                    f"its .json beside it, written by `python -m dicetalk_bench.metrics "
                                    f"train-emotion`)")
    try:
        meta = json.loads(json_path.read_text())
        protocol = OwnEmotionProtocol.from_json(meta["input"])
        labels = tuple(meta["labels"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{json_path}: not an own-emotion checkpoint description ({type(exc).__name__}: {exc})") \
            from exc
    from dicetalk_bench.metrics.emotion import MEAD_EMOTIONS

    if labels != MEAD_EMOTIONS:
        raise ValueError(f"{json_path}: labels {labels} differ from the MEAD order {MEAD_EMOTIONS}")
    sha = sha256_file(st_path)
    if meta.get("weights_sha256") != sha:
        raise ValueError(f"{st_path}: sha256 {sha} differs from the {meta.get('weights_sha256')} recorded in "
                         f"{json_path}; the weights and their description do not belong together")
    try:
        t = load_file(str(st_path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise ValueError(f"{st_path}: cannot read as safetensors ({exc})") from exc
    missing = {"weight", "bias", "feature_mean", "feature_std"} - set(t)
    if missing:
        raise ValueError(f"{st_path}: missing tensors {sorted(missing)}")
    clf = OwnEmotionClassifier(t["weight"], t["bias"], t["feature_mean"], t["feature_std"], protocol, meta)
    record = {"key": "own-emotion", "file": str(st_path), "sha256": sha, "calibrated": False}
    return clf, record
