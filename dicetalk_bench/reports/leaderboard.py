"""Evaluation runs -> one leaderboard table per dataset (columns, rows, cells with CI and best/second marks).

Directions come from data, never from a template: the metric registry's ``higher_is_better`` (which every
MetricResult also records; a disagreement between the two is an error), or, for a metric the registry does not
know, the results files themselves (which must then agree with each other).

Marks (:mod:`.comparability`): per column, rows are compared only within groups of equal protocol, reference set,
extractor weights and generated clip set; within a group, among the rows whose share of failed videos left out of
the value is at most the group's lowest + ``MarkingConfig.max_failure_excess``, every row whose value equals the best value is ``"best"``, every
row equal to the next distinct value is ``"second"`` (:func:`rank_marks`); rows without a value, rows alone in
their group and rows with too many failures are unmarked. Row calibration: :mod:`.calibration`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from dicetalk_bench.metrics.feature_sets import stack_features
from dicetalk_bench.metrics.intervals import DEFAULT_LEVEL, MEAN_RESAMPLES, SET_RESAMPLES, interval_for
from dicetalk_bench.metrics.result import MetricResult
from dicetalk_bench.reports.calibration import RowCalibration, generator_problems, row_calibration
from dicetalk_bench.reports.comparability import (Group, MarkingConfig, comparable_protocol, mark_column,
                                                  rank_marks)
from dicetalk_bench.reports.layout import PageLayout
from dicetalk_bench.reports.runs import Run

__all__ = ["ARROWS", "BootstrapConfig", "Cell", "Column", "LeaderboardError", "MarkingConfig", "Row", "Table",
           "PageLayout", "build_columns", "build_tables", "cell_for", "rank_marks", "set_statistic"]

logger = logging.getLogger(__name__)

DATASET_ORDER = {"mead": 0, "hdtf": 1}  # tab order; other datasets follow by name
ARROWS = {True: "\u2191", False: "\u2193"}  # lm-eval HIGHER_IS_BETTER_SYMBOLS


class LeaderboardError(ValueError):
    """Results that cannot be put in one table (conflicting directions, no runs)."""


@dataclasses.dataclass(frozen=True)
class BootstrapConfig:
    """Interval settings of a page.

    By default each cell shows the interval stored in its result when it was scored
    (:mod:`dicetalk_bench.metrics.intervals`); these settings then only apply to results without one (files
    written before intervals were stored). ``recompute`` recomputes every interval from the stored per-video
    values and features at this ``level`` and ``seed``; ``set_resamples`` = 0 turns the (slow: one
    eigendecomposition each) set-metric recomputation off.
    """

    resamples: int = MEAN_RESAMPLES
    set_resamples: int = SET_RESAMPLES
    level: float = DEFAULT_LEVEL
    seed: int = 0
    recompute: bool = False


@dataclasses.dataclass(frozen=True)
class Column:
    key: str
    higher_is_better: bool
    description: str

    @property
    def arrow(self) -> str:
        return ARROWS[self.higher_is_better]


@dataclasses.dataclass(frozen=True)
class Cell:
    value: float | None
    ci: tuple[float, float] | None = None
    ci_method: str | None = None  # the interval's method (metrics.intervals.METHOD_MEAN / METHOD_SET)
    ci_level: float | None = None  # the interval's coverage level, e.g. 0.95
    n_videos: int = 0
    n_failures: int = 0
    mark: str | None = None  # "best" | "second" | None
    calibrated: bool = True
    failure_rate: float = 0.0  # failed / attempted videos, in [0, 1]
    n_attempted: int = 0
    group: str | None = None  # comparison group label ("A", "B", ...) where the column has more than one group
    note: str | None = None  # why the cell has no mark, when it has a value but none


#: Row kinds (``provenance["row_kind"]``): a method under test, the ceiling (real videos scored as a method), or a
#: baseline built from the test clips. Only method rows take best/second marks.
ROW_KINDS: tuple[str, ...] = ("method", "ceiling", "baseline")


@dataclasses.dataclass(frozen=True)
class Row:
    method: str
    calibrated: bool
    provenance: Mapping[str, Any]
    source: str  # results file the row comes from
    cells: Mapping[str, Cell]
    calibration: RowCalibration = RowCalibration()
    kind: str = "method"  # one of ROW_KINDS
    results: Mapping[str, MetricResult] = dataclasses.field(default_factory=dict, compare=False, repr=False)


def row_kind(provenance: Mapping[str, Any]) -> str:
    """The kind of a results file's row (``provenance["row_kind"]``; files without one are method rows)."""
    kind = str(provenance.get("row_kind") or "method")
    if kind not in ROW_KINDS:
        raise LeaderboardError(f"row kind {kind!r} is not one of {ROW_KINDS}")
    return kind


@dataclasses.dataclass(frozen=True)
class Table:
    dataset: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    glossary: Mapping[str, list[dict[str, Any]]]  # metric -> [{"protocol": {...}, "methods": [...]}, ...]
    groups: Mapping[str, tuple[Group, ...]] = dataclasses.field(default_factory=dict)  # metric -> comparison groups
    marking: MarkingConfig = MarkingConfig()
    layout: PageLayout = PageLayout()  # column groups and decimals of the page and the LaTeX table


def _registry_spec(key: str) -> Any:
    from dicetalk_bench.metrics.registry import MetricRegistryError, get_metric

    try:
        return get_metric(key)
    except MetricRegistryError:
        return None


def build_columns(runs: Sequence[Run]) -> tuple[Column, ...]:
    """Columns in registry order (then unknown keys in first-seen order), directions checked across all runs."""
    from dicetalk_bench.metrics.registry import metric_names

    seen: dict[str, tuple[bool, str]] = {}
    for run in runs:
        for key, r in run.results.items():
            spec = _registry_spec(key)
            if spec is not None and spec.higher_is_better != r.higher_is_better:
                raise LeaderboardError(f"{run.path}: metric {key!r} says higher_is_better={r.higher_is_better} but "
                                       f"the metric registry says {spec.higher_is_better}")
            if key in seen and seen[key][0] != r.higher_is_better:
                raise LeaderboardError(f"{run.path}: metric {key!r} has higher_is_better={r.higher_is_better}, "
                                       f"other results files say {seen[key][0]}")
            desc = spec.description if spec is not None else str(r.protocol.get("description", "(not in registry)"))
            seen.setdefault(key, (r.higher_is_better, desc))
    order = [k for k in metric_names() if k in seen] + [k for k in seen if _registry_spec(k) is None]
    return tuple(Column(k, seen[k][0], seen[k][1]) for k in order)


def set_statistic(result: MetricResult) -> Any:
    """f(pooled generated features (N, d)) -> the metric against the stored reference features, or None.

    FID and FVD: Fréchet distance of the Gaussian fits (covariance ddof 1, as the metrics compute them); KID: the
    metric's own subset estimator with the protocol's subset size, subset count and seed. Uses the metrics
    package's maths (no re-implementation).
    """
    from dicetalk_bench.metrics.registry import FID, FVD, KID

    if not result.features or not result.reference_features:
        return None
    ref = stack_features(result.reference_features, dtype=np.float64)
    if result.key in (FID, FVD):
        from dicetalk_bench.metrics.frechet import FeatureStats, frechet_distance

        rs = FeatureStats.from_features(ref)
        mu_r, cov_r = rs.mean(), rs.cov(ddof=1)

        def fd(gen: np.ndarray) -> float:
            s = FeatureStats.from_features(gen)
            return frechet_distance(s.mean(), s.cov(ddof=1), mu_r, cov_r)

        return fd
    if result.key == KID:
        from dicetalk_bench.metrics.kid import kernel_inception_distance

        p = result.protocol
        subset, n_subsets, kid_seed = int(p.get("subset_size", 0)), int(p.get("n_subsets", 0)), int(p.get("seed", 0))
        if subset < 2 or n_subsets < 1:
            return None

        def kid(gen: np.ndarray) -> float:
            return kernel_inception_distance(ref, gen, n_subsets=n_subsets, subset_size=min(subset, len(gen)),
                                             seed=kid_seed).mean
        return kid
    return None


def cell_for(result: MetricResult | None, boot: BootstrapConfig) -> Cell:
    """The cell of one result: value, n, and its interval -- the one stored in the result, or (``boot.recompute``,
    or a result stored without one) recomputed from its per-video values or features at ``boot``'s settings."""
    if result is None:
        return Cell(value=None)
    record = result.interval
    if record is None or boot.recompute:
        try:
            record = interval_for(result, level=boot.level, seed=boot.seed, mean_resamples=boot.resamples,
                                  set_resamples=boot.set_resamples)
        except ValueError as exc:  # e.g. non-finite per-video values: the cell keeps its value, without a CI
            logger.warning("%s: no interval (%s)", result.key, exc)
            record = None
    ci = None if record is None else (float(record["low"]), float(record["high"]))
    return Cell(value=result.value, ci=ci, ci_method=None if record is None else str(record["method"]),
                ci_level=None if record is None else float(record["level"]), n_videos=result.n_videos,
                n_failures=len(result.failures), calibrated=result.calibrated, failure_rate=result.failure_rate,
                n_attempted=result.n_attempted)


def _glossary(columns: Sequence[Column], runs: Sequence[Run]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for col in columns:
        groups: dict[str, dict[str, Any]] = {}
        for run in runs:
            r = run.results.get(col.key)
            if r is None:
                continue
            blob = json.dumps(comparable_protocol(r), sort_keys=True)
            g = groups.setdefault(blob, {"protocol": json.loads(blob), "methods": []})
            g["methods"].append(run.method)
        out[col.key] = list(groups.values())
    return out


def build_tables(runs: Sequence[Run], boot: BootstrapConfig = BootstrapConfig(),
                 marking: MarkingConfig = MarkingConfig(), layout: PageLayout = PageLayout()) -> list[Table]:
    """One :class:`Table` per dataset (MEAD, HDTF, then others by name), rows in the order of ``runs``; columns in
    ``layout``'s group order; marks per column by :func:`.comparability.mark_column` under ``marking``. A build
    that takes more than a second shows a progress bar (tqdm, one step per row: the cells' intervals)."""
    from tqdm.auto import tqdm

    if not runs:
        raise LeaderboardError("no results to put in a leaderboard")
    tables = []
    bar = tqdm(total=len(runs), desc="leaderboard", unit="row", delay=1.0, leave=False)
    for dataset in sorted({r.dataset for r in runs}, key=lambda d: (DATASET_ORDER.get(d, len(DATASET_ORDER)), d)):
        group = [r for r in runs if r.dataset == dataset]
        by_key = {c.key: c for c in build_columns(group)}
        columns = tuple(by_key[k] for k in layout.order_keys(list(by_key)))
        calibration = [row_calibration(run.results.values(), run.provenance) for run in group]
        generator_ok = [not generator_problems(run.provenance)[0] for run in group]
        cells = []
        for run in group:
            cells.append({c.key: cell_for(run.results.get(c.key), boot) for c in columns})
            bar.update(1)
        kinds = [row_kind(run.provenance) for run in group]
        groups: dict[str, tuple[Group, ...]] = {}
        for c in columns:
            # only method rows are ranked; ceiling and baseline rows are shown for reference
            ranked = [run.results.get(c.key) if kind == "method" else None for run, kind in zip(group, kinds)]
            col = mark_column(c.key, ranked, c.higher_is_better, marking)
            groups[c.key] = col.groups
            several = len(col.groups) > 1
            for row, gen_ok, mark, label, note in zip(cells, generator_ok, col.marks, col.group_of, col.notes):
                # a cell is calibrated when its metric's extractors and the generator (if recorded) are
                row[c.key] = dataclasses.replace(row[c.key], mark=mark, group=label if several else None, note=note,
                                                 calibrated=row[c.key].calibrated and gen_ok)
        rows = tuple(Row(run.method, cal.calibrated, run.provenance, str(run.path), cell_row, cal, kind,
                         dict(run.results))
                     for run, cal, cell_row, kind in zip(group, calibration, cells, kinds))
        tables.append(Table(dataset, columns, rows, _glossary(columns, group), groups, marking, layout))
    bar.close()
    return tables
