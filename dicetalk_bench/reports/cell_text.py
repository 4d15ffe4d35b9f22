"""The text of one leaderboard cell, shared by every export: escaping, intervals, percentages, failures, notes.

Pure functions of a :class:`~.leaderboard.Cell` (or a provenance record); numbers are formatted with a metric's
decimals (:meth:`.layout.PageLayout.format`), full precision with :func:`.layout.fmt`.
"""

from __future__ import annotations

import functools
import html
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from dicetalk_bench.reports.layout import PageLayout, fmt
from dicetalk_bench.reports.leaderboard import Cell

UNCALIBRATED_NOTE = "uncalibrated weights: not comparable to papers"
PINNED_NOTE = "pinned by user"


def esc(text: Any) -> str:
    """HTML-escape any value's str() (``& < > " '``)."""
    return html.escape(str(text), quote=True)


def half_width(cell: Cell, f: Callable[[float | None], str] = fmt) -> float | None:
    """Half the width of a cell's interval when it is symmetric about the value (to display precision ``f``),
    else None (then :func:`interval_text` shows low–high)."""
    if cell.ci is None or cell.value is None:
        return None
    lo, hi = cell.ci
    hw = (hi - lo) / 2.0
    if f(cell.value - lo) != f(hi - cell.value):
        return None
    return hw


def interval_text(cell: Cell, pm: str = "\u00b1 ", dash: str = "\u2013",
                  f: Callable[[float | None], str] = fmt) -> str | None:
    """``"± h"`` for an interval symmetric about the value, ``"[low–high]"`` otherwise, None without one; numbers
    formatted by ``f`` (a metric's decimals: :meth:`.layout.PageLayout.format`)."""
    if cell.ci is None:
        return None
    hw = half_width(cell, f)
    return f"{pm}{f(hw)}" if hw is not None else f"[{f(cell.ci[0])}{dash}{f(cell.ci[1])}]"


def metric_formatter(layout: PageLayout, key: str) -> Callable[[float | None], str]:
    """The display formatter of metric ``key`` under ``layout`` (its decimals)."""
    return functools.partial(layout.format, key)


def reproduce_text(provenance: Mapping[str, Any]) -> str | None:
    """The shell lines that reproduce a row: the toolkit version and commit as a comment, then the exact command
    line recorded in the provenance (shell-quoted); None when the results file records no command line."""
    argv = provenance.get("command_line")
    if not argv:
        return None
    command = shlex.join(str(a) for a in argv) if isinstance(argv, (list, tuple)) else str(argv)
    commit = provenance.get("git_commit")
    head = f"# dicetalk_bench {provenance.get('toolkit_version') or '?'}"
    if commit:
        head += f", git checkout {commit}" + (" (the run had uncommitted changes)" if provenance.get("git_dirty")
                                              else "")
    return f"{head}\n{command}"


def short_hash(h: Any, n: int = 12) -> str:
    """The first ``n`` characters of a hash or commit, "–" when there is none."""
    return "\u2013" if not h else str(h)[:n]


def pct(level: float) -> str:
    """0.95 -> "95%", 0.975 -> "97.5%"."""
    return f"{level * 100:.10g}%"


def failure_text(cell: Cell) -> str:
    """"2/16 failed (12.5%)" for a cell with failures, "" otherwise."""
    if not cell.n_failures:
        return ""
    n = cell.n_attempted or (cell.n_videos + cell.n_failures)
    return f"{cell.n_failures}/{n} failed ({cell.failure_rate:.1%})"
