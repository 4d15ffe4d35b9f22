"""Leaderboard tables -> ``results.csv``: one line per (dataset, method), safe to open in a spreadsheet."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from dicetalk_bench.reports.leaderboard import Table

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(cell: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula (OWASP "CSV injection"): text starting with ``= + - @``,
    tab or carriage return gets a leading ``'``; numbers, and text that is a number (``-1.5``), are kept."""
    if not isinstance(cell, str) or not cell.startswith(_FORMULA_START):
        return cell
    try:
        float(cell)
    except ValueError:
        return "'" + cell
    return cell


def tables_to_csv(tables: Sequence[Table]) -> str:
    """One line per (dataset, method); per metric: value, ci_low, ci_high, n_videos, failure_rate. Text cells go
    through :func:`csv_safe`."""
    keys: list[str] = []
    for t in tables:
        keys += [c.key for c in t.columns if c.key not in keys]
    header = ["dataset", "method", "calibrated"]
    for k in keys:
        header += [k, f"{k}_ci_low", f"{k}_ci_high", f"{k}_n_videos", f"{k}_failure_rate"]
    header += ["toolkit_version", "git_commit", "date_utc", "config_hash", "checkpoint_sha256"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([csv_safe(x) for x in header])
    for t in tables:
        for r in t.rows:
            line: list[Any] = [t.dataset, r.method, r.calibrated]
            for k in keys:
                c = r.cells.get(k)
                rate = "" if c is None or not c.n_attempted else repr(float(c.failure_rate))
                if c is None or c.value is None:
                    line += ["", "", "", "" if c is None else c.n_videos, rate]
                else:
                    line += [repr(float(c.value)), "" if c.ci is None else repr(c.ci[0]),
                             "" if c.ci is None else repr(c.ci[1]), c.n_videos, rate]
            p = r.provenance
            ck = p.get("checkpoint") or {}
            line += [p.get("toolkit_version") or "", p.get("git_commit") or "", p.get("date_utc") or "",
                     p.get("config_hash") or "", ck.get("sha256", "") if isinstance(ck, dict) else ""]
            w.writerow([csv_safe(x) for x in line])
    return buf.getvalue()
