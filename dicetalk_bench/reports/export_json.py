"""Leaderboard tables -> the machine-readable ``results.json`` document (schema :data:`LEADERBOARD_SCHEMA`)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any

from dicetalk_bench.reports.leaderboard import BootstrapConfig, Table
from dicetalk_bench.reports.per_emotion import per_emotion_records

LEADERBOARD_SCHEMA = "dicetalk_bench.leaderboard"
LEADERBOARD_SCHEMA_VERSION = 1


def _groups_dict(t: Table) -> dict[str, list[dict[str, Any]]]:
    return {k: [{"label": g.label, "methods": [t.rows[i].method for i in g.rows], "differences": list(g.differences)}
                for g in groups] for k, groups in t.groups.items()}


def tables_to_dict(tables: Sequence[Table], boot: BootstrapConfig) -> dict[str, Any]:
    """The machine-readable leaderboard (``results.json``)."""
    return {
        "schema": LEADERBOARD_SCHEMA, "schema_version": LEADERBOARD_SCHEMA_VERSION,
        "generated_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "bootstrap": {"resamples": boot.resamples, "set_resamples": boot.set_resamples, "level": boot.level,
                      "seed": boot.seed, "recomputed": boot.recompute},
        "marking": {"max_failure_excess": tables[0].marking.max_failure_excess if tables else None,
                    "rule": "marks within groups of equal protocol, reference set, extractor weights and clip set, "
                            "among rows whose share of failed videos left out of the value is at most the group's "
                            "lowest + max_failure_excess"},
        "datasets": [{
            "dataset": t.dataset,
            "columns": [{"key": c.key, "higher_is_better": c.higher_is_better, "description": c.description}
                        for c in t.columns],
            "rows": [{"method": r.method, "kind": r.kind, "calibrated": r.calibrated, "source": r.source,
                      "calibration": {"label": r.calibration.label(), "problems": list(r.calibration.problems),
                                      "pinned_by_user": list(r.calibration.pinned_by_user)},
                      "provenance": dict(r.provenance),
                      "per_emotion": per_emotion_records(r),
                      "metrics": {k: {"value": c.value, "ci_low": None if c.ci is None else c.ci[0],
                                      "ci_high": None if c.ci is None else c.ci[1], "ci_method": c.ci_method,
                                      "ci_level": c.ci_level, "n_videos": c.n_videos, "n_failures": c.n_failures,
                                      "n_attempted": c.n_attempted, "failure_rate": c.failure_rate,
                                      "mark": c.mark, "group": c.group, "note": c.note, "calibrated": c.calibrated}
                                  for k, c in r.cells.items()}}
                     for r in t.rows],
            "comparison_groups": _groups_dict(t),
            "column_groups": [{"group": g, "heading": h, "metrics": keys}
                              for g, h, keys in t.layout.groups([c.key for c in t.columns])],
            "decimals": {c.key: t.layout.decimals.get(c.key) for c in t.columns},
            "glossary": dict(t.glossary),
        } for t in tables],
    }


def results_document(tables: Sequence[Table], boot: BootstrapConfig, *, strips: Mapping[str, Any],
                     published: Sequence[Any] = ()) -> dict[str, Any]:
    """:func:`tables_to_dict` plus each dataset's ``sample_clips`` (``strips``: dataset -> :class:`~.clip_strip.Strip`
    or None) and the ``published`` values shown on the page (:class:`~.published.PublishedValue`)."""
    doc = tables_to_dict(tables, boot)
    for entry in doc["datasets"]:
        s = strips.get(entry["dataset"])
        entry["sample_clips"] = None if s is None else s.to_dict()
    doc["published"] = [{"source": v.source.id, "arxiv": v.source.arxiv, "table": v.source.table,
                         "checked": v.source.checked, "method": v.method, "dataset": v.dataset, "metric": v.metric,
                         "value": v.value, "kind": v.kind, "computed_here": v.computed_here} for v in published]
    return doc
