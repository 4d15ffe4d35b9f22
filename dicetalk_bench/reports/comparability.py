"""Which rows of a leaderboard column may be compared, and the best/second marks they get (pure, no torch).

Two numbers of one metric are compared only when they were computed the same way on the same inputs, i.e. their
*basis* is equal:

- the comparable protocol record (:func:`comparable_protocol`: the result's ``protocol`` without the descriptive
  fields older results files kept there, :data:`DESCRIPTIVE_PROTOCOL_KEYS`); it holds the reference set's content
  hash (``reference_sha256`` / ``reference_manifest_sha256``), so different reference sets differ here;
- the extractor weights (registry key and sha256 of every network the metric ran);
- the generated clip set (:func:`clip_set`: ``MetricResult.clip_ids``, else the ids of per-video values, failures
  and stored features).

Rows with equal bases form a comparison group (:func:`comparison_groups`): the largest group is "A", the others
"B", "C", ... in order of size, each described by what differs from group A (:func:`describe_difference`, e.g.
``"fid.resize_mode: pytorch-fid vs tf1"``, ``"clip set: 3 vs 16 clips"``). Marks are given within a group only
(:func:`mark_column`), and only to rows whose excluded-failure rate (:func:`excluded_failure_rate`) is at most the
group's lowest plus :attr:`MarkingConfig.max_failure_excess`; a method that fails on its hardest videos cannot win
by leaving them out. Failures a metric counts in its value (emotion accuracy counts a failed video as wrong: it keeps
a per-video value) are not held against the row a second time. A row alone in its group is not marked: there is
nothing to compare it with.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from dicetalk_bench.metrics.result import MetricResult

DEFAULT_MAX_FAILURE_EXCESS = 0.01  # one percentage point

# Fields that results files written before protocol records were cleaned kept in ``protocol`` although they
# describe the run (where the files were, the unclamped value, why reference videos failed), not the protocol.
DESCRIPTIVE_PROTOCOL_KEYS = frozenset({"videos_dir", "reference_dir", "raw_value", "reference_failures",
                                       "n_generated_clips"})
REFERENCE_KEYS = ("reference_sha256", "reference_manifest_sha256")
_RATE_TOLERANCE = 1e-12


@dataclasses.dataclass(frozen=True)
class MarkingConfig:
    """``max_failure_excess``: a row is marked only if its failure rate (failed / attempted videos, in [0, 1]) is at
    most the lowest failure rate of its comparison group plus this (0.01 = one percentage point)."""

    max_failure_excess: float = DEFAULT_MAX_FAILURE_EXCESS

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_failure_excess <= 1.0:
            raise ValueError(f"max_failure_excess must be in [0, 1], got {self.max_failure_excess}")


def points(fraction: float) -> str:
    """0.01 -> "1 percentage point", 0.05 -> "5 percentage points"."""
    n = f"{fraction * 100:g}"
    return f"{n} percentage point" + ("" if n == "1" else "s")


def comparable_protocol(result: MetricResult) -> dict[str, Any]:
    """The JSON form of ``result.protocol`` without :data:`DESCRIPTIVE_PROTOCOL_KEYS`."""
    protocol = result.to_dict()["protocol"]
    return {k: v for k, v in protocol.items() if k not in DESCRIPTIVE_PROTOCOL_KEYS}


def clip_set(result: MetricResult) -> tuple[str, ...] | None:
    """Sorted clip ids the metric was asked to score, or None when the result does not say (older files of set
    metrics without stored features)."""
    if result.clip_ids:
        return tuple(sorted(result.clip_ids))
    ids = set(result.per_video) | set(result.failures) | set(result.features or {})
    return tuple(sorted(ids)) if ids else None


def excluded_failure_rate(result: MetricResult) -> float:
    """Share of the attempted videos that failed and are left out of the value: failures without a per-video value
    (all failures of set metrics and of metrics whose policy excludes them; none of those a metric counts as wrong),
    divided by :attr:`MetricResult.n_attempted`; 0 when nothing was attempted."""
    n = result.n_attempted
    left_out = sum(1 for cid in result.failures if cid not in result.per_video)
    return left_out / n if n else 0.0


def extractor_weights(result: MetricResult) -> tuple[tuple[str, str], ...]:
    """Sorted (registry key, sha256) of the networks behind ``result``."""
    return tuple(sorted((str(e.get("key")), str(e.get("sha256"))) for e in result.extractors))


@dataclasses.dataclass(frozen=True)
class Basis:
    """What one number was computed under; equal bases are comparable."""

    protocol: Mapping[str, Any]
    weights: tuple[tuple[str, str], ...]
    clips: tuple[str, ...] | None

    def key(self) -> str:
        return json.dumps([self.protocol, self.weights, self.clips], sort_keys=True)


def basis_of(result: MetricResult) -> Basis:
    return Basis(comparable_protocol(result), extractor_weights(result), clip_set(result))


def _short(value: Any, width: int = 40) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12]  # a sha256
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def describe_difference(metric: str, a: Basis, b: Basis) -> tuple[str, ...]:
    """What differs between basis ``a`` and ``b``, one phrase each, ``a``'s value first."""
    out: list[str] = []
    missing = "(not recorded)"
    ref_a = next((a.protocol[k] for k in REFERENCE_KEYS if k in a.protocol), None)
    ref_b = next((b.protocol[k] for k in REFERENCE_KEYS if k in b.protocol), None)
    if ref_a != ref_b:
        out.append(f"reference set: {_short(ref_a) if ref_a else missing} vs {_short(ref_b) if ref_b else missing}")
    for k in sorted(set(a.protocol) | set(b.protocol)):
        if k in REFERENCE_KEYS:
            continue
        va, vb = a.protocol.get(k, missing), b.protocol.get(k, missing)
        if va != vb:
            out.append(f"{metric}.{k}: {_short(va)} vs {_short(vb)}")
    wa, wb = dict(a.weights), dict(b.weights)
    for k in sorted(set(wa) | set(wb)):
        if wa.get(k) != wb.get(k):
            out.append(f"{k} weights: {_short(wa.get(k, missing))} vs {_short(wb.get(k, missing))}")
    if a.clips != b.clips:
        if a.clips is None or b.clips is None:
            na = missing if a.clips is None else f"{len(a.clips)} clips"
            nb = missing if b.clips is None else f"{len(b.clips)} clips"
            out.append(f"clip set: {na} vs {nb}")
        elif len(a.clips) != len(b.clips):
            out.append(f"clip set: {len(a.clips)} vs {len(b.clips)} clips")
        else:
            n_diff = len(set(a.clips) - set(b.clips))
            out.append(f"clip set: {n_diff} of {len(a.clips)} clip ids differ")
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class Group:
    """Rows (indices into the column) with one basis; ``differences`` from group A (empty for A itself)."""

    label: str
    rows: tuple[int, ...]
    differences: tuple[str, ...]


def _label(i: int) -> str:
    label = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        label = chr(ord("A") + r) + label
    return label


def comparison_groups(metric: str, results: Sequence[MetricResult | None]) -> tuple[Group, ...]:
    """Partition the rows that have a result into groups of equal :class:`Basis` (see the module docstring)."""
    by_key: dict[str, tuple[Basis, list[int]]] = {}
    for i, r in enumerate(results):
        if r is None:
            continue
        basis = basis_of(r)
        by_key.setdefault(basis.key(), (basis, []))[1].append(i)
    ordered = sorted(by_key.values(), key=lambda g: (-len(g[1]), g[1][0]))
    if not ordered:
        return ()
    first = ordered[0][0]
    return tuple(Group(_label(n), tuple(rows), () if n == 0 else describe_difference(metric, first, basis))
                 for n, (basis, rows) in enumerate(ordered))


def rank_marks(values: Sequence[float | None], higher_is_better: bool) -> list[str | None]:
    """"best" / "second" / None for each value, direction-aware; every value equal to the best is "best", every
    value equal to the next distinct value "second"; None and non-finite values are unmarked."""
    present = sorted({float(v) for v in values if v is not None and math.isfinite(v)}, reverse=higher_is_better)
    best = present[0] if present else None
    second = present[1] if len(present) > 1 else None
    out: list[str | None] = []
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(None)
        elif float(v) == best:
            out.append("best")
        elif float(v) == second:
            out.append("second")
        else:
            out.append(None)
    return out


@dataclasses.dataclass(frozen=True)
class ColumnMarks:
    """Per row of one column: its mark, its group label (None without a result) and why it has no mark (None when
    it has one, or when there is nothing to say)."""

    marks: tuple[str | None, ...]
    group_of: tuple[str | None, ...]
    notes: tuple[str | None, ...]
    groups: tuple[Group, ...]


def _has_value(r: MetricResult | None) -> bool:
    return r is not None and r.value is not None and math.isfinite(float(r.value))


def mark_column(metric: str, results: Sequence[MetricResult | None], higher_is_better: bool,
                config: MarkingConfig = MarkingConfig()) -> ColumnMarks:
    """Marks of one column under the comparison and failure-rate rules of the module docstring."""
    n = len(results)
    marks: list[str | None] = [None] * n
    group_of: list[str | None] = [None] * n
    notes: list[str | None] = [None] * n
    groups = comparison_groups(metric, results)
    for g in groups:
        for i in g.rows:
            group_of[i] = g.label
        valued = [i for i in g.rows if _has_value(results[i])]
        if len(valued) < 2:
            if valued and len(groups) > 1:
                notes[valued[0]] = (f"no mark: no other row was scored under the same protocol, weights and clip set "
                                    f"(group {g.label})")
            continue
        rates = {i: excluded_failure_rate(results[i]) for i in valued}  # type: ignore[arg-type]
        lowest = min(rates.values())
        limit = lowest + config.max_failure_excess + _RATE_TOLERANCE
        eligible = [i for i in valued if rates[i] <= limit]
        for i in valued:
            if i not in eligible:
                notes[i] = (f"no mark: {rates[i]:.1%} of its videos failed and are left out of the value, more than "
                            f"the lowest rate among compared rows ({lowest:.1%}) + {points(config.max_failure_excess)}")
        for i, mark in zip(eligible, rank_marks([results[i].value for i in eligible], higher_is_better)):
            marks[i] = mark
    return ColumnMarks(tuple(marks), tuple(group_of), tuple(notes), groups)
