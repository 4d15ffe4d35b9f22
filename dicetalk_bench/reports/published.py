"""Published rows: numbers from papers shown beside reproduced rows, greyed, with their citation, never marked.

A published-rows file (YAML; the shipped one is ``published_mead.yaml`` in this package) holds sources and rows::

    schema: dicetalk_bench.published_rows
    schema_version: 1
    sources:   {<id>: {arxiv, table, protocol_note, checked: bool, checked_note}}
    higher_is_better: {<metric we do not compute>: bool}
    rows:      [{source, method, dataset, kind: method|ceiling, values: {<metric>: value}}]

and is flattened into one :class:`PublishedValue` per (source, method, dataset, metric). A metric key is either a
registry key (``sync-c``, ``fid``, ...; the direction comes from the registry) or a metric we do not compute
(``cpbd``), whose direction the file states; such columns are shown as published-only.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

SCHEMA = "dicetalk_bench.published_rows"
SCHEMA_VERSION = 1
SHIPPED_FILES = ("published_mead.yaml",)  # in this package
ROW_KINDS = ("method", "ceiling")

_ARXIV_RE = re.compile(r"^\d{4}\.\d{4,5}$")
_METRIC_RE = re.compile(r"^[a-z][a-z0-9-]*$")


class PublishedRowsError(ValueError):
    """A published-rows file that cannot be read (names the file and the entry)."""


@dataclasses.dataclass(frozen=True)
class PublishedSource:
    """Where published numbers come from: an arXiv id and table, how they were measured, whether we checked them."""

    id: str
    arxiv: str
    table: str
    protocol_note: str
    checked: bool
    checked_note: str = ""

    @property
    def citation(self) -> str:
        state = "checked against the paper" if self.checked else (self.checked_note or "not checked against the paper")
        return f"arXiv:{self.arxiv}, {self.table} ({state}). {self.protocol_note}".strip()


@dataclasses.dataclass(frozen=True)
class PublishedValue:
    """One published number: ``value`` of ``metric`` for ``method`` on ``dataset`` from ``source``."""

    source: PublishedSource
    method: str
    dataset: str
    metric: str
    value: float
    higher_is_better: bool
    kind: str = "method"
    computed_here: bool = True  # False: a metric dicetalk_bench does not compute (published-only column)


def _require(entry: Mapping[str, Any], name: str, where: str) -> Any:
    if name not in entry:
        raise PublishedRowsError(f"{where}: missing field {name!r}")
    return entry[name]


def _direction(metric: str, declared: Mapping[str, Any], where: str) -> tuple[bool, bool]:
    """(higher_is_better, computed_here) of ``metric``: the registry's, else the file's declaration."""
    from dicetalk_bench.metrics.registry import get_metric, metric_names

    if metric in metric_names():
        higher = get_metric(metric).higher_is_better
        if metric in declared and bool(declared[metric]) != higher:
            raise PublishedRowsError(f"{where}: higher_is_better for {metric!r} contradicts the metric registry")
        return higher, True
    if metric not in declared:
        raise PublishedRowsError(f"{where}: metric {metric!r} is not a dicetalk_bench metric; declare its direction "
                                 f"under higher_is_better")
    return bool(declared[metric]), False


def parse_published(doc: Any, origin: str = "<published rows>") -> list[PublishedValue]:
    """Validate a published-rows document (already parsed from YAML) and flatten it; raises PublishedRowsError."""
    if not isinstance(doc, Mapping) or doc.get("schema") != SCHEMA:
        raise PublishedRowsError(f"{origin}: not a {SCHEMA} document")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise PublishedRowsError(f"{origin}: schema_version {doc.get('schema_version')!r} is not supported "
                                 f"(expected {SCHEMA_VERSION})")
    sources: dict[str, PublishedSource] = {}
    for sid, s in (doc.get("sources") or {}).items():
        where = f"{origin}: source {sid!r}"
        if not isinstance(s, Mapping):
            raise PublishedRowsError(f"{where}: expected a mapping")
        arxiv = str(_require(s, "arxiv", where))
        if not _ARXIV_RE.match(arxiv):
            raise PublishedRowsError(f"{where}: arxiv {arxiv!r} is not an arXiv id like 2504.18087")
        checked = _require(s, "checked", where)
        if not isinstance(checked, bool):
            raise PublishedRowsError(f"{where}: checked must be true or false, not {checked!r}")
        sources[str(sid)] = PublishedSource(id=str(sid), arxiv=arxiv, table=str(_require(s, "table", where)),
                                            protocol_note=str(_require(s, "protocol_note", where)).strip(),
                                            checked=checked, checked_note=str(s.get("checked_note", "")))
    declared = doc.get("higher_is_better") or {}
    out: list[PublishedValue] = []
    seen: set[tuple[str, str, str, str]] = set()
    for i, row in enumerate(doc.get("rows") or []):
        where = f"{origin}: rows[{i}]"
        if not isinstance(row, Mapping):
            raise PublishedRowsError(f"{where}: expected a mapping")
        sid = str(_require(row, "source", where))
        if sid not in sources:
            raise PublishedRowsError(f"{where}: unknown source {sid!r}; known: {sorted(sources)}")
        kind = str(row.get("kind", "method"))
        if kind not in ROW_KINDS:
            raise PublishedRowsError(f"{where}: kind {kind!r} is not one of {ROW_KINDS}")
        method, dataset = str(_require(row, "method", where)), str(_require(row, "dataset", where))
        values = _require(row, "values", where)
        if not isinstance(values, Mapping) or not values:
            raise PublishedRowsError(f"{where}: values must be a non-empty mapping metric -> number")
        for metric, value in values.items():
            metric = str(metric)
            if not _METRIC_RE.match(metric):
                raise PublishedRowsError(f"{where}: metric name {metric!r} is not lower-case letters/digits/'-'")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PublishedRowsError(f"{where}: value of {metric!r} must be a number, not {value!r}")
            key = (sid, method, dataset, metric)
            if key in seen:
                raise PublishedRowsError(f"{where}: duplicate entry for {key}")
            seen.add(key)
            higher, computed = _direction(metric, declared, where)
            out.append(PublishedValue(source=sources[sid], method=method, dataset=dataset, metric=metric,
                                      value=float(value), higher_is_better=higher, kind=kind, computed_here=computed))
    return out


def load_published(paths: Sequence[str | Path] | None = None) -> list[PublishedValue]:
    """Published values from YAML files; ``None`` loads the files shipped with dicetalk_bench."""
    import yaml

    out: list[PublishedValue] = []
    if paths is None:
        for name in SHIPPED_FILES:
            text = resources.files("dicetalk_bench.reports").joinpath(name).read_text(encoding="utf-8")
            out.extend(parse_published(yaml.safe_load(text), origin=name))
        return out
    for p in paths:
        p = Path(p)
        try:
            doc = yaml.safe_load(p.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise PublishedRowsError(f"published rows file {p} does not exist") from exc
        except yaml.YAMLError as exc:
            raise PublishedRowsError(f"published rows file {p} is not valid YAML ({exc})") from exc
        out.extend(parse_published(doc, origin=str(p)))
    return out


def published_by_row(values: Sequence[PublishedValue], dataset: str) -> dict[tuple[str, str], dict[str, PublishedValue]]:
    """``{(source id, method): {metric: value}}`` for one dataset, in file order."""
    rows: dict[tuple[str, str], dict[str, PublishedValue]] = {}
    for v in values:
        if v.dataset == dataset:
            rows.setdefault((v.source.id, v.method), {})[v.metric] = v
    return rows
