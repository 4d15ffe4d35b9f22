"""The provenance record stored with every evaluation results file (after lm-evaluation-harness's record).

It answers "where does this row come from": toolkit version and git commit, package versions, seed, the command
line, the date, the hash of the resolved evaluation config, the checkpoint hash (when the videos were generated
from a checkpoint), a hash of the scored videos, and every feature extractor's weights record (sha256 and whether
they are the official, calibrated files). No heavy imports: versions are read from package metadata.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib.metadata
import platform
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dicetalk_bench.git_state import git_dirty

PROVENANCE_VERSION = 1

# Distributions whose versions change numbers (torch kernels, decoders, resizers) or the model (diffusers).
PACKAGES: tuple[str, ...] = ("torch", "torchvision", "numpy", "scipy", "diffusers", "transformers", "av",
                             "torch-fidelity", "lpips", "mediapipe", "pyarrow", "scikit-image")


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (None when not installed), without importing it."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def tree_sha256(path: str | Path) -> str:
    """sha256 of a file, or of a folder as sha256 over sorted lines ``relative/path<TAB>sha256`` of its files."""
    from dicetalk_bench.fileutil import sha256_file

    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        raise FileNotFoundError(f"cannot hash {path}: no such file or folder")
    h = hashlib.sha256()
    for p in sorted(q for q in path.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(path).as_posix()}\t{sha256_file(p)}\n".encode())
    return h.hexdigest()


def checkpoint_weights(folder: str | Path) -> dict[str, Any] | None:
    """The pretrained weights records a training checkpoint was made with (``state.json`` ``"records"``: SVD,
    Whisper, each ``{"key", "file", "sha256", "calibrated", ...}``), or None when the folder does not record them."""
    import json

    state = Path(folder) / "state.json"
    if not state.is_file():
        return None
    try:
        records = json.loads(state.read_text()).get("records")
    except (OSError, ValueError):
        return None
    return dict(records) if isinstance(records, Mapping) and records else None


def extractor_records(results: Iterable[Any]) -> list[dict[str, Any]]:
    """Distinct extractor weights records over ``results`` (MetricResults), each with the metrics using it."""
    by_id: dict[tuple[Any, Any], dict[str, Any]] = {}
    for r in results:
        for e in r.extractors:
            ident = (e.get("key"), e.get("sha256"))
            rec = by_id.setdefault(ident, {"key": e.get("key"), "file": e.get("file"), "sha256": e.get("sha256"),
                                          "calibrated": bool(e.get("calibrated", False)),
                                          "pinned_by": e.get("pinned_by"), "metrics": []})
            if r.key not in rec["metrics"]:
                rec["metrics"].append(r.key)
    return list(by_id.values())


def build_provenance(*, method: str, dataset: str, seed: int, argv: Sequence[str], config_hash: str,
                     results: Sequence[Any], checkpoint: Mapping[str, Any] | None = None,
                     videos_sha256: str | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The record written under ``"provenance"`` in ``results/<dataset>/<method>.json``.

    ``calibrated`` is True only when every extractor of every result uses calibrated weights (published or pinned
    by the user) and, for videos generated from a checkpoint, every pretrained weights record of the checkpoint
    (``checkpoint["weights"]``) is calibrated too; ``calibration`` says which part is not
    (:mod:`dicetalk_bench.reports.calibration`).
    """
    import dicetalk_bench
    from dicetalk_bench.metrics.result import environment_record
    from dicetalk_bench.reports.calibration import row_calibration

    extractors = extractor_records(results)
    calibration = row_calibration(results, {"checkpoint": dict(checkpoint) if checkpoint else None})
    return {
        "provenance_version": PROVENANCE_VERSION,
        "method": method,
        "dataset": dataset,
        "toolkit_version": dicetalk_bench.__version__,
        "git_commit": environment_record().get("git_commit"),
        "git_dirty": git_dirty(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "seed": int(seed),
        "command_line": list(argv),
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config_hash": config_hash,
        "checkpoint": dict(checkpoint) if checkpoint else None,
        "videos_sha256": videos_sha256,
        "extractors": extractors,
        "calibrated": calibration.calibrated,
        "calibration": calibration.label(),
        **(dict(extra) if extra else {}),
    }
