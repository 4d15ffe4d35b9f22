"""The versioned result format every metric returns (:class:`MetricResult`) and its JSON file.

A results file is one JSON object::

    {"schema": "dicetalk_bench.metric_results", "schema_version": 2, "results": [<MetricResult>, ...]}

Each result holds the number and everything needed to judge or recompute it: the protocol record (every choice
that changes the number), the extractor records from :meth:`dicetalk_bench.weights.ResolvedWeights.record` (file,
sha256, calibrated), per-video values, per-video failures with their reasons, and the environment (package and
library versions, git commit). FID, FVD and KID also keep per-video features (``(n_i, d) float32`` per clip id) so
a leaderboard can bootstrap over videos without re-running networks; they go to a sidecar
``<stem>.features.npz`` next to the JSON (the JSON names it and its sha256).

Importing this module does not import torch.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import functools
import json
import logging
import math
import platform
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dicetalk_bench.fileutil import atomic_path, sha256_file

logger = logging.getLogger(__name__)

SCHEMA = "dicetalk_bench.metric_results"
SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)  # version 1 lacks interval, failure_kinds and clip_ids (read as empty)


class ResultFormatError(ValueError):
    """A results file that cannot be read: wrong schema or version, missing fields, or a broken features file."""


def environment_record() -> dict[str, Any]:
    """Versions and commit stored with every result (libraries only if already imported: no heavy imports here)."""
    import dicetalk_bench

    env: dict[str, Any] = {"dicetalk_bench": dicetalk_bench.__version__, "python": platform.python_version(),
                           "numpy": np.__version__, "platform": platform.platform()}
    for name in ("torch", "torch_fidelity", "scipy", "av"):
        mod = sys.modules.get(name)
        if mod is not None:
            env[name] = getattr(mod, "__version__", "unknown")
    env["git_commit"] = _git_commit()
    return env


@functools.lru_cache(maxsize=1)
def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _jsonable(x: Any) -> Any:
    """Convert numpy scalars/arrays and Paths inside protocol records into JSON types."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float) and not math.isfinite(x):
        return nonfinite_text(x)
    return x


def json_types(x: Any) -> Any:
    """``x`` with numpy values, Paths and non-finite floats (as :func:`nonfinite_text`) turned into JSON types."""
    return _jsonable(x)


NONFINITE_TEXT = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def nonfinite_text(x: float) -> str:
    """The JSON form of a non-finite float: ``"inf"``, ``"-inf"`` or ``"nan"`` (JSON has no such numbers)."""
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def decode_nonfinite(x: Any) -> Any:
    """Inverse of the JSON form inside numeric fields: ``"inf"``/``"-inf"``/``"nan"`` -> float, recursively through
    dicts and lists; any other value unchanged."""
    if isinstance(x, str):
        return NONFINITE_TEXT.get(x, x)
    if isinstance(x, Mapping):
        return {k: decode_nonfinite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [decode_nonfinite(v) for v in x]
    return x


@dataclasses.dataclass(frozen=True)
class MetricResult:
    """One metric's score on one set of videos.

    ``value`` is None when every video failed; a non-finite value (or per-video value, interval bound, or number in
    ``extra``) is stored in the JSON as ``"inf"``, ``"-inf"`` or ``"nan"`` and read back as that float.
    ``per_video`` maps clip id -> the metric on that video (metrics that
    have one; set metrics such as FID leave it empty), ``failures`` clip id -> reason and ``failure_kinds`` clip id
    -> one of :data:`dicetalk_bench.errors.FAILURE_KINDS`. ``clip_ids`` lists every clip id the metric was asked
    to score (scored and failed, sorted), so reports can tell whether two rows scored the same clips.
    ``interval`` is the uncertainty interval computed when the result was scored::

        {"low": float, "high": float, "level": 0.95, "method": str, "n_resamples": int, "seed": int}

    (None when there is none, e.g. fewer than 2 videos). ``features`` (in memory and in the sidecar file only) maps
    clip id -> ``(n_i, d)`` float32 features of that video, generated set first; ``reference_features`` the same
    for the reference set (FID/FVD/KID).
    """

    key: str
    value: float | None
    higher_is_better: bool
    n_videos: int
    n_frames: int | None = None
    n_clips: int | None = None
    protocol: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    extractors: Sequence[Mapping[str, Any]] = ()
    per_video: Mapping[str, float] = dataclasses.field(default_factory=dict)
    failures: Mapping[str, str] = dataclasses.field(default_factory=dict)
    failure_kinds: Mapping[str, str] = dataclasses.field(default_factory=dict)
    clip_ids: Sequence[str] = ()
    interval: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    environment: Mapping[str, Any] = dataclasses.field(default_factory=environment_record)
    created_utc: str = dataclasses.field(default_factory=_utc_now)
    features: Mapping[str, np.ndarray] | None = dataclasses.field(default=None, compare=False, repr=False)
    reference_features: Mapping[str, np.ndarray] | None = dataclasses.field(default=None, compare=False,
                                                                            repr=False)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ResultFormatError(f"MetricResult.key must be a non-empty string, not {self.key!r}")
        if self.value is not None and not isinstance(self.value, (int, float)):
            raise ResultFormatError(f"MetricResult {self.key}: value must be a number or None, not {self.value!r}")
        if int(self.n_videos) < 0:
            raise ResultFormatError(f"MetricResult {self.key}: n_videos must be >= 0, not {self.n_videos}")

    @property
    def n_attempted(self) -> int:
        """Videos the metric was asked to score: ``len(clip_ids)`` when recorded, else scored + failed."""
        return len(self.clip_ids) if self.clip_ids else int(self.n_videos) + len(self.failures)

    @property
    def failure_rate(self) -> float:
        """Failed / attempted videos in [0, 1] (0 when nothing was attempted)."""
        n = self.n_attempted
        return len(self.failures) / n if n else 0.0

    @property
    def calibrated(self) -> bool:
        """True only if every extractor's weights are the official files (comparable with published numbers)."""
        return all(bool(e.get("calibrated", False)) for e in self.extractors)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict without the features arrays (see :func:`save_results`)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("features", "reference_features")}
        d["value"] = None if self.value is None else float(self.value)
        d["calibrated"] = self.calibrated
        d["per_video"] = {k: float(v) for k, v in self.per_video.items()}
        d["extractors"] = [dict(e) for e in self.extractors]
        return _jsonable(d)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], features: Mapping[str, np.ndarray] | None = None,
                  reference_features: Mapping[str, np.ndarray] | None = None) -> MetricResult:
        """Inverse of :meth:`to_dict`; raises ResultFormatError naming a missing or unknown field."""
        if not isinstance(d, Mapping):
            raise ResultFormatError(f"a metric result must be a JSON object, not {type(d).__name__}")
        version = d.get("schema_version")
        if version not in READABLE_SCHEMA_VERSIONS:
            raise ResultFormatError(f"metric result {d.get('key')!r}: schema_version {version!r} is not supported "
                                    f"(this dicetalk_bench reads version {SCHEMA_VERSION})")
        names = {f.name for f in dataclasses.fields(cls)} - {"features", "reference_features"}
        missing = {"key", "value", "higher_is_better", "n_videos"} - set(d)
        if missing:
            raise ResultFormatError(f"metric result {d.get('key')!r}: missing fields {sorted(missing)}")
        unknown = set(d) - names - {"calibrated"}
        if unknown:
            raise ResultFormatError(f"metric result {d.get('key')!r}: unknown fields {sorted(unknown)}")
        kwargs = {k: v for k, v in d.items() if k in names}
        for numeric in ("value", "per_video", "interval", "extra"):  # non-finite numbers are stored as text
            if numeric in kwargs:
                kwargs[numeric] = decode_nonfinite(kwargs[numeric])
        kwargs["extractors"] = tuple(kwargs.get("extractors", ()))
        kwargs["clip_ids"] = tuple(kwargs.get("clip_ids", ()))
        kwargs["schema_version"] = SCHEMA_VERSION
        return cls(**kwargs, features=features, reference_features=reference_features)


def _features_path(json_path: Path) -> Path:
    return json_path.with_name(json_path.stem + ".features.npz")


def save_results(results: Sequence[MetricResult], path: str | Path) -> Path:
    """Write ``results`` to ``path`` (JSON) and, when any carries features, ``<stem>.features.npz`` beside it.

    Both files are written atomically. Returns the JSON path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    stored: dict[int, str] = {}  # id(array) -> name: FID and KID share one feature set, stored once
    entries = []
    for i, r in enumerate(results):
        d = r.to_dict()
        index: dict[str, dict[str, str]] = {}
        for which, feats in (("features", r.features), ("reference_features", r.reference_features)):
            if not feats:
                continue
            index[which] = {}
            for j, (clip_id, arr) in enumerate(feats.items()):
                name = stored.get(id(arr))
                if name is None:
                    name = f"r{i}_{which}_{j}"
                    arrays[name] = np.asarray(arr, dtype=np.float32)
                    stored[id(arr)] = name
                index[which][clip_id] = name
        if index:
            d["features_index"] = index
        entries.append(d)
    doc: dict[str, Any] = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "results": entries}
    if arrays:
        fpath = _features_path(path)
        with atomic_path(fpath, suffix=".npz") as tmp:
            np.savez(tmp, **arrays)
        doc["features_file"] = {"file": fpath.name, "sha256": sha256_file(fpath)}
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(doc, indent=2, sort_keys=False, allow_nan=False) + "\n")
    return path


def load_results(path: str | Path, *, load_features: bool = True) -> list[MetricResult]:
    """Read a results file written by :func:`save_results` (and its features file, checked against its sha256)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ResultFormatError(f"results file {path} does not exist") from exc
    except json.JSONDecodeError as exc:
        raise ResultFormatError(f"results file {path} is not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ResultFormatError(f"results file {path}: not a {SCHEMA} document")
    if doc.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
        raise ResultFormatError(f"results file {path}: schema_version {doc.get('schema_version')!r} is not "
                                f"supported (expected {SCHEMA_VERSION})")
    arrays: Mapping[str, np.ndarray] = {}
    ff = doc.get("features_file")
    if ff and load_features:
        fpath = path.with_name(ff["file"])
        if not fpath.is_file():
            raise ResultFormatError(f"results file {path}: its features file {fpath} is missing")
        actual = sha256_file(fpath)
        if actual != ff.get("sha256"):
            raise ResultFormatError(f"features file {fpath}: sha256 {actual} differs from {ff.get('sha256')} "
                                    f"recorded in {path}; it was modified or belongs to another run")
        with np.load(fpath) as z:
            arrays = {k: z[k] for k in z.files}
    out = []
    for d in doc.get("results", []):
        d = dict(d)
        index = d.pop("features_index", {})
        kw: dict[str, dict[str, np.ndarray]] = {}
        if arrays:
            for which, mapping in index.items():
                kw[which] = {cid: arrays[name] for cid, name in mapping.items()}
        out.append(MetricResult.from_dict(d, **kw))
    return out
