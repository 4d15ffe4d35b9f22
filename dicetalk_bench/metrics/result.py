"""The versioned result format every metric returns (:class:`MetricResult`) and its JSON file.

A results file is one JSON object::

    {"schema": "dicetalk_bench.metric_results", "schema_version": 2, "results": [<MetricResult>, ...]}

Each result holds the number and everything needed to judge or recompute it: the protocol record (every choice
that changes the number), the extractor records from :meth:`dicetalk_bench.weights.ResolvedWeights.record` (file,
sha256, calibrated), per-video values, per-video failures with their reasons, and the environment (package and
library versions, git commit). FID, FVD and KID also keep per-video features (``(n_i, d) float32`` per clip id) so
a leaderboard can bootstrap over videos without re-running networks: the generated set's go to a sidecar
``<stem>.features.npz`` next to the JSON (the JSON names it and its sha256); the reference set's are stored once
per reference set, content-addressed, in a shared store (``reference_features/<sha256>.npz``) that every results
file scored against that set points to (``reference_features_file`` in the result's entry, and
``protocol["reference_sha256"]``, :func:`reference_set_sha256`). Non-finite numbers are stored as ``"inf"``,
``"-inf"`` and ``"nan"`` and read back as floats.

Importing this module does not import torch.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import math
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dicetalk_bench.fileutil import atomic_path, sha256_file
from dicetalk_bench.git_state import git_commit

if TYPE_CHECKING:
    import pandas

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
    env["git_commit"] = git_commit()
    return env


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
        """True only if every extractor's weights are calibrated: the published files, or files the user pinned as
        verified (``weights verify --pin``; records say ``"pinned_by": "user"``)."""
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

    def to_frame(self) -> "pandas.DataFrame":
        """Per-video rows as a pandas DataFrame: ``clip_id, metric, value`` (NaN for failed videos), ``failed``,
        ``failure_kind``, ``failure_reason``; one row per attempted clip, sorted by clip id. Set metrics (no per-video
        values) give rows only for their failures."""
        import pandas as pd

        ids = sorted(set(self.per_video) | set(self.failures) | set(self.clip_ids if self.per_video else ()))
        return pd.DataFrame({
            "clip_id": pd.Series(ids, dtype="string"),
            "metric": self.key,
            "value": [float(self.per_video[c]) if c in self.per_video else float("nan") for c in ids],
            "failed": [c in self.failures for c in ids],
            "failure_kind": pd.Series([self.failure_kinds.get(c) for c in ids], dtype="string"),
            "failure_reason": pd.Series([self.failures.get(c) for c in ids], dtype="string"),
        })


def _features_path(json_path: Path) -> Path:
    return json_path.with_name(json_path.stem + ".features.npz")


REFERENCE_STORE = "reference_features"  # default store folder, beside the results file


def reference_set_sha256(features: Mapping[str, np.ndarray], extractors: Sequence[Mapping[str, Any]] = ()) -> str:
    """Content hash of a reference feature set: sha256 over the extractors' weights sha256 (the protocol that made
    the features) and, per clip id in sorted order, the id, the array shape and its float32 bytes."""
    h = hashlib.sha256()
    h.update(json.dumps(sorted(str(e.get("sha256")) for e in extractors)).encode())
    for clip_id in sorted(features):
        arr = np.ascontiguousarray(features[clip_id], dtype=np.float32)
        h.update(clip_id.encode() + b"\0" + repr(arr.shape).encode() + b"\0")
        h.update(arr.tobytes())
    return h.hexdigest()


def with_reference_sha256(result: MetricResult) -> MetricResult:
    """``result`` with ``protocol["reference_sha256"]`` set from its reference features (unchanged without)."""
    if not result.reference_features:
        return result
    sha = reference_set_sha256(result.reference_features, result.extractors)
    return dataclasses.replace(result, protocol=dict(result.protocol) | {"reference_sha256": sha})


def save_reference_features(features: Mapping[str, np.ndarray], extractors: Sequence[Mapping[str, Any]],
                            store: str | Path) -> tuple[str, Path]:
    """Write a reference feature set once into ``store/<sha256>.npz`` (content-addressed: an existing file of that
    name is kept). Returns (sha256, path). The npz holds ``clip_ids`` (unicode array), ``extractor_sha256`` and one
    ``f<i>`` (n_i, d) float32 array per clip id in sorted order."""
    sha = reference_set_sha256(features, extractors)
    path = Path(store) / f"{sha}.npz"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        ids = sorted(features)
        arrays = {f"f{i}": np.asarray(features[c], dtype=np.float32) for i, c in enumerate(ids)}
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, clip_ids=np.array(ids, dtype=str),
                     extractor_sha256=np.array(sorted(str(e.get("sha256")) for e in extractors), dtype=str),
                     **arrays)
    return sha, path


def load_reference_features(path: str | Path, sha256: str) -> dict[str, np.ndarray]:
    """Read a stored reference feature set and check that its content hashes to ``sha256`` (ResultFormatError
    naming the file otherwise)."""
    path = Path(path)
    if not path.is_file():
        raise ResultFormatError(f"reference features {path} are missing; score the method again to rewrite them")
    try:
        with np.load(path) as z:
            ids = [str(c) for c in z["clip_ids"]]
            feats = {c: z[f"f{i}"] for i, c in enumerate(ids)}
            extractors = [{"sha256": str(x)} for x in z["extractor_sha256"]]
    except (OSError, KeyError, ValueError) as exc:
        raise ResultFormatError(f"reference features {path} cannot be read ({exc}); delete it and score the "
                                f"method again") from exc
    actual = reference_set_sha256(feats, extractors)
    if actual != sha256:
        raise ResultFormatError(f"reference features {path}: content hash {actual} differs from {sha256}; the file "
                                f"was modified -- delete it and score the method again")
    return feats


def save_results(results: Sequence[MetricResult], path: str | Path, *, header: Mapping[str, Any] | None = None,
                 reference_store: str | Path | None = None) -> Path:
    """Write ``results`` to ``path`` (JSON), their generated-set features to ``<stem>.features.npz`` beside it,
    and each reference feature set once into ``reference_store`` (default ``<folder of path>/reference_features``)
    as ``<sha256>.npz``, shared by every results file that uses the same reference set.

    Each result with reference features gets ``protocol["reference_sha256"]`` (the set's content hash,
    :func:`reference_set_sha256`). ``header`` adds top-level keys (e.g. method, dataset, provenance) to the same
    JSON document. Every file is written atomically and the JSON last, so a results file exists whole with its
    header, or not at all (a failure leaves the previous file, if any). Returns the JSON path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    store = Path(reference_store) if reference_store is not None else path.parent / REFERENCE_STORE
    arrays: dict[str, np.ndarray] = {}
    stored: dict[int, str] = {}  # id(array) -> name: FID and KID share one feature set, stored once
    refs: dict[int, tuple[str, Path]] = {}  # id(reference mapping) -> (sha256, file)
    entries = []
    for i, r in enumerate(results):
        d = r.to_dict()
        if r.features:
            index: dict[str, str] = {}
            for j, (clip_id, arr) in enumerate(r.features.items()):
                name = stored.get(id(arr))
                if name is None:
                    name = f"r{i}_features_{j}"
                    arrays[name] = np.asarray(arr, dtype=np.float32)
                    stored[id(arr)] = name
                index[clip_id] = name
            d["features_index"] = {"features": index}
        if r.reference_features:
            if id(r.reference_features) not in refs:
                refs[id(r.reference_features)] = save_reference_features(r.reference_features, r.extractors, store)
            sha, fpath = refs[id(r.reference_features)]
            recorded = r.protocol.get("reference_sha256")
            if recorded is not None and recorded != sha:
                raise ResultFormatError(f"metric result {r.key!r}: protocol reference_sha256 {recorded} differs from "
                                        f"the content hash {sha} of its reference features")
            d["protocol"]["reference_sha256"] = sha
            d["reference_features_file"] = {"file": os.path.relpath(fpath, path.parent), "sha256": sha}
        entries.append(d)
    doc: dict[str, Any] = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "results": entries}
    if arrays:
        fpath = _features_path(path)
        with atomic_path(fpath, suffix=".npz") as tmp:
            np.savez(tmp, **arrays)
        doc["features_file"] = {"file": fpath.name, "sha256": sha256_file(fpath)}
    for k, v in (header or {}).items():
        if k in doc:
            raise ValueError(f"save_results: header key {k!r} is reserved")
        doc[k] = _jsonable(v)
    text = json.dumps(doc, indent=2, sort_keys=False, allow_nan=False) + "\n"  # fails before anything is written
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return path


def load_results(path: str | Path, *, load_features: bool = True,
                 reference_cache: dict[str, Mapping[str, np.ndarray]] | None = None) -> list[MetricResult]:
    """Read a results file written by :func:`save_results`, with its features when ``load_features``: the
    generated-set features file (checked against its recorded sha256) and the shared reference feature sets
    (checked against their content hash; ``reference_cache`` (sha256 -> features), shared across calls, reads
    each set once)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ResultFormatError(f"results file {path} does not exist") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
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
    cache = reference_cache if reference_cache is not None else {}
    out = []
    for d in doc.get("results", []):
        d = dict(d)
        index = d.pop("features_index", {})
        ref_file = d.pop("reference_features_file", None)
        kw: dict[str, Mapping[str, np.ndarray]] = {}
        if arrays:
            for which, mapping in index.items():  # version 1 files also index reference features here
                kw[which] = {cid: arrays[name] for cid, name in mapping.items()}
        if ref_file and load_features:
            sha = ref_file["sha256"]
            if sha not in cache:
                cache[sha] = load_reference_features(path.parent / ref_file["file"], sha)
            kw["reference_features"] = cache[sha]
        out.append(MetricResult.from_dict(d, **kw))
    return out
