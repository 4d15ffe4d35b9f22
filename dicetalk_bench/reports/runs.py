"""The evaluation results file: a metrics results document plus who/what/how (method, dataset, provenance).

``results/<dataset>/<method>.json`` is exactly what :func:`dicetalk_bench.metrics.result.save_results` writes
(``schema``, ``schema_version``, ``results``, and ``features_file`` when FID/KID/FVD stored per-video features; the
reference features of FID/KID/FVD go once per reference set to ``results/reference_features/<sha256>.npz``) with
three more top-level keys, written in the same atomic write (a results file exists whole or not at all)::

    "method": "<name as given>", "dataset": "mead" | "hdtf" | ..., "provenance": {...}  (reports/provenance.py)

so :func:`~dicetalk_bench.metrics.result.load_results` still reads it. A plain ``python -m dicetalk_bench.metrics
score`` output without those keys is accepted too: the method is then the file stem and the dataset the name of the
folder holding it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dicetalk_bench.fileutil import atomic_path
from dicetalk_bench.metrics.result import MetricResult, ResultFormatError, load_results, save_results

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def safe_file_stem(name: str) -> str:
    """A file-name-safe form of a method name (the name itself is kept, unchanged, inside the file)."""
    stem = _UNSAFE.sub("_", name).strip("._") or "method"
    return stem[:120]


@dataclasses.dataclass(frozen=True)
class Run:
    """One method scored on one dataset: its results keyed by metric, its provenance, the file it came from."""

    method: str
    dataset: str
    results: Mapping[str, MetricResult]
    provenance: Mapping[str, Any]
    path: Path

    @property
    def calibrated(self) -> bool:
        return all(r.calibrated for r in self.results.values())


class ResultsCollisionError(ResultFormatError):
    """A results file name already used by a different method (two names that sanitise to the same file)."""


def check_results_target(path: str | Path, method: str) -> None:
    """Refuse to write ``method``'s results to ``path`` when the file there records a different method.

    Method names are mapped to file names by :func:`safe_file_stem` ("A/B" and "A_B" give the same file); the same
    method may overwrite its own results. A file that is not readable JSON is refused too (it names the file).
    """
    path = Path(path)
    if not path.exists():
        return
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsCollisionError(f"{path} exists but is not a readable results file ({exc}); delete it or "
                                    f"choose another --method") from exc
    other = doc.get("method") if isinstance(doc, dict) else None
    if other is not None and other != method:
        raise ResultsCollisionError(
            f"method {method!r} would be written to {path}, which holds the results of method {other!r} (both names "
            f"map to the file name {path.stem!r}); choose a --method whose file name differs, or delete {path} to "
            f"replace those results")


def write_run(results: Sequence[MetricResult], path: str | Path, *, method: str, dataset: str,
              provenance: Mapping[str, Any], reference_store: str | Path | None = None) -> Path:
    """Write ``results`` with method, dataset and provenance as one results file, whole or not at all
    (:func:`~dicetalk_bench.metrics.result.save_results`); refuses a file of another method
    (:func:`check_results_target`). Reference features go to ``reference_store`` (default: the file's folder's
    ``reference_features``)."""
    check_results_target(path, method)
    return save_results(results, path, header={"method": method, "dataset": dataset, "provenance": dict(provenance)},
                        reference_store=reference_store)


def annotate_run(path: str | Path, *, method: str, dataset: str, provenance: Mapping[str, Any]) -> Path:
    """Add method, dataset and provenance to a results file written by ``save_results`` (atomic rewrite of the
    JSON only; the features files are untouched). :func:`write_run` writes all at once instead."""
    path = Path(path)
    doc = json.loads(path.read_text())
    if doc.get("schema") != "dicetalk_bench.metric_results":
        raise ResultFormatError(f"results file {path}: not a dicetalk_bench.metric_results document")
    doc.update({"method": method, "dataset": dataset, "provenance": dict(provenance)})
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return path


def read_run(path: str | Path, *, load_features: bool = True,
             reference_cache: dict[str, Mapping[str, Any]] | None = None) -> Run:
    """Read one evaluation results file; ResultFormatError names the file, the problem and the fix."""
    path = Path(path)
    try:
        return _read_run(path, load_features, reference_cache)
    except (ResultFormatError, ValueError, KeyError, TypeError, OSError) as exc:
        text = str(exc)
        where = "" if str(path) in text else f"results file {path}: "
        raise ResultFormatError(f"{where}{text}. Delete {path} (and its .features.npz) or score that method again "
                                f"with python -m dicetalk_bench.evaluate") from exc


def _read_run(path: Path, load_features: bool, reference_cache: dict[str, Mapping[str, Any]] | None) -> Run:
    results = load_results(path, load_features=load_features, reference_cache=reference_cache)
    doc = json.loads(path.read_text())
    method = doc.get("method")
    dataset = doc.get("dataset")
    if method is None or dataset is None:
        logger.warning("%s has no method/dataset record (a plain metrics output?): using method %r, dataset %r",
                       path, path.stem, path.parent.name)
        method = method or path.stem
        dataset = dataset or path.parent.name
    if not isinstance(method, str) or not method or not isinstance(dataset, str) or not dataset:
        raise ResultFormatError(f"results file {path}: 'method' and 'dataset' must be non-empty strings, got "
                                f"{method!r} and {dataset!r}")
    by_key: dict[str, MetricResult] = {}
    for r in results:
        if r.key in by_key:
            raise ResultFormatError(f"results file {path}: metric {r.key!r} appears twice")
        by_key[r.key] = r
    prov = doc.get("provenance")
    if prov is None:
        env = results[0].environment if results else {}
        prov = {"toolkit_version": env.get("dicetalk_bench"), "git_commit": env.get("git_commit"),
                "date_utc": results[0].created_utc if results else None}
    if not isinstance(prov, Mapping):
        raise ResultFormatError(f"results file {path}: 'provenance' must be a JSON object")
    return Run(method, dataset, by_key, prov, path)


def find_runs(results_dir: str | Path, *, load_features: bool = True) -> list[Run]:
    """Every results file under ``results_dir`` (``**/*.json``), sorted by (dataset, method).

    Raises FileNotFoundError for a missing folder, ResultFormatError when it holds no results files, when a JSON
    file is not a results file (naming it and how to fix it), or when two files claim the same (dataset, method).
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {root} does not exist; run python -m dicetalk_bench.evaluate "
                                f"--out OUTDIR first and pass --results OUTDIR/results")
    cache: dict[str, Mapping[str, Any]] = {}  # reference feature sets, each read once
    runs = [read_run(p, load_features=load_features, reference_cache=cache) for p in sorted(root.rglob("*.json"))]
    if not runs:
        raise ResultFormatError(f"results folder {root} holds no results files (*.json)")
    seen: dict[tuple[str, str], Path] = {}
    for run in runs:
        other = seen.setdefault((run.dataset, run.method), run.path)
        if other != run.path:
            raise ResultFormatError(f"method {run.method!r} on dataset {run.dataset!r} has two results files: "
                                    f"{other} and {run.path}; keep one")
    return sorted(runs, key=lambda r: (r.dataset, r.method))
