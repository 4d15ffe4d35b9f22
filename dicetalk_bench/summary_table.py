"""Plain-text tables of scored results for the terminal (the end of ``evaluate`` and of the demo).

Pure formatting: values get a number of decimals that suits their size (3 significant digits, at most 4
decimals), intervals are shown as ``[low, high]`` with the same decimals as their value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


def decimals_for(value: float) -> int:
    """Decimals that show ``value`` to about 3 significant digits: 0 from 100 up, 1 from 10, 2 from 1, up to 4
    below 0.01 (0 for zero and non-finite values)."""
    if not math.isfinite(value) or value == 0:
        return 0
    magnitude = math.floor(math.log10(abs(value)))
    return int(min(4, max(0, 2 - magnitude)))


def format_value(value: float | None, decimals: int | None = None) -> str:
    """``value`` with :func:`decimals_for` decimals (or ``decimals``); "-" for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    d = decimals_for(float(value)) if decimals is None else decimals
    return f"{float(value):.{d}f}"


def format_interval(interval: Mapping[str, Any] | None, decimals: int) -> str:
    """``[low, high]`` of a stored interval record, "-" when there is none."""
    if not interval or interval.get("low") is None or interval.get("high") is None:
        return "-"
    return f"[{float(interval['low']):.{decimals}f}, {float(interval['high']):.{decimals}f}]"


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces, a dashed rule under the header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


def metric_rows(results: Sequence[Any]) -> list[list[str]]:
    """One row per :class:`dicetalk_bench.metrics.result.MetricResult`: metric (with its direction), value,
    interval, n videos, failures (``failed/attempted``)."""
    rows = []
    for r in results:
        d = decimals_for(float(r.value)) if r.value is not None else 0
        arrow = "\u2191" if r.higher_is_better else "\u2193"
        rows.append([f"{r.key} {arrow}", format_value(r.value, d), format_interval(r.interval, d), str(r.n_videos),
                     f"{len(r.failures)}/{r.n_attempted}"])
    return rows


def results_table(results: Sequence[Any]) -> str:
    """The summary table of one results file's metrics."""
    return text_table(["metric", "value", "interval", "n", "failures"], metric_rows(results))
