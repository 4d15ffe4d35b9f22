"""Leaderboard tables -> ``index.html`` (self-contained), ``results.json``, ``results.csv``, ``results.tex``.

The HTML has inline CSS and JS only (no network assets) and opens from disk. Every string that comes from a results
file or the registry goes through :func:`esc` (``html.escape`` with quotes), including attribute values; numbers
are formatted here. Directions, arrows, marks and CIs come from :mod:`.leaderboard`, never from the template.
"""

from __future__ import annotations

import csv
import datetime as _dt
import html
import io
import json
import functools
import math
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dicetalk_bench.fileutil import atomic_write_bytes
from dicetalk_bench.metrics.result import json_types
from dicetalk_bench.reports.comparability import points
from dicetalk_bench.reports.clip_strip import StripConfig
from dicetalk_bench.reports.layout import PageLayout, fmt
from dicetalk_bench.reports.leaderboard import BootstrapConfig, Cell, Table

LEADERBOARD_SCHEMA = "dicetalk_bench.leaderboard"
LEADERBOARD_SCHEMA_VERSION = 1
UNCALIBRATED_NOTE = "uncalibrated weights: not comparable to papers"
PINNED_NOTE = "pinned by user"
CI_METHOD_NAMES = {"percentile-bootstrap-mean-over-videos": "percentile bootstrap of the mean over videos",
                   "bias-centred-bootstrap-over-videos": "bias-centred bootstrap over videos (docs/metrics.md)"}
KIND_NOTES = {"ceiling": "the real test videos scored as a method: what a perfect method would reach (never marked)",
              "baseline": "a trivial method built from the test clips: what a method must beat (never marked)"}
LICENCE_NOTE = ("DICE-Talk and Sonic model weights are licensed CC BY-NC-SA 4.0 (non-commercial, share-alike); "
                "MEAD may be used for non-commercial research only, under its licence terms; HDTF clips come from "
                "YouTube videos under their owners' terms. Scores computed with uncalibrated (random or unverified) "
                "extractor weights are not comparable to published numbers.")


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


def _short(h: Any, n: int = 12) -> str:
    return "\u2013" if not h else str(h)[:n]


def pct(level: float) -> str:
    """0.95 -> "95%", 0.975 -> "97.5%"."""
    return f"{level * 100:.10g}%"


def interval_levels(tables: Sequence[Table], boot: BootstrapConfig) -> list[float]:
    """The levels of the intervals shown (stored intervals keep their own level); ``boot.level`` when none."""
    levels = sorted({c.ci_level for t in tables for r in t.rows for c in r.cells.values() if c.ci_level is not None})
    return levels or [boot.level]


def failure_text(cell: Cell) -> str:
    """"2/16 failed (12.5%)" for a cell with failures, "" otherwise."""
    if not cell.n_failures:
        return ""
    n = cell.n_attempted or (cell.n_videos + cell.n_failures)
    return f"{cell.n_failures}/{n} failed ({cell.failure_rate:.1%})"


def _groups_dict(t: Table) -> dict[str, list[dict[str, Any]]]:
    return {k: [{"label": g.label, "methods": [t.rows[i].method for i in g.rows], "differences": list(g.differences)}
                for g in groups] for k, groups in t.groups.items()}


# ---------------------------------------------------------------------------------------------------- JSON / CSV
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


# ---------------------------------------------------------------------------------------------------- LaTeX
_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}", ">": r"\textgreater{}"}


def tex_escape(text: Any) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def tables_to_latex(tables: Sequence[Table]) -> str:
    """One booktabs ``tabular`` per dataset: best \\textbf, second \\underline, the interval as $\\pm$ half-width
    when symmetric about the value, else low--high (at the level each cell's interval was computed at, stated in a
    comment)."""
    parts = ["% generated by python -m dicetalk_bench.evaluate leaderboard; needs \\usepackage{booktabs}"]
    levels = sorted({c.ci_level for t in tables for r in t.rows for c in r.cells.values() if c.ci_level is not None})
    if levels:
        parts.append("% $\\pm$: half-width of the " + " / ".join(tex_escape(pct(v)) for v in levels)
                     + " interval; marks compare rows of equal protocol, reference set, weights and clip set only")
    for t in tables:
        parts.append(f"% dataset: {tex_escape(t.dataset)}")
        parts.append("\\begin{tabular}{l" + "c" * len(t.columns) + "}")
        parts.append("\\toprule")
        runs = t.layout.groups([c.key for c in t.columns])
        by_key = {c.key: c for c in t.columns}
        columns = [by_key[k] for _, _, keys in runs for k in keys]
        if len(runs) > 1 or (runs and runs[0][0] != "other"):
            heads, rules, col = ["~"], [], 2
            for _, heading, keys in runs:
                heads.append(f"\\multicolumn{{{len(keys)}}}{{c}}{{{tex_escape(heading)}}}")
                rules.append(f"\\cmidrule(lr){{{col}-{col + len(keys) - 1}}}")
                col += len(keys)
            parts.append(" & ".join(heads) + " \\\\ " + " ".join(rules))
        heads = [f"{tex_escape(c.key.upper())} $\\{'uparrow' if c.higher_is_better else 'downarrow'}$"
                 for c in columns]
        parts.append(" & ".join(["Method"] + heads) + " \\\\")
        parts.append("\\midrule")
        for r in t.rows:
            cells = []
            for c in columns:
                cell = r.cells[c.key]
                f = metric_formatter(t.layout, c.key)
                s = f(cell.value)
                if cell.mark == "best":
                    s = f"\\textbf{{{s}}}"
                elif cell.mark == "second":
                    s = f"\\underline{{{s}}}"
                if cell.group is not None:
                    s += f"\\textsuperscript{{{tex_escape(cell.group)}}}"
                ci = interval_text(cell, pm="$\\pm$ ", dash="--", f=f)
                if ci is not None:
                    s += f" {{\\scriptsize {ci}}}"
                if cell.n_failures:
                    s += f" {{\\scriptsize ({tex_escape(f'{cell.failure_rate:.1%}')} failed)}}"
                cells.append(s)
            name = tex_escape(r.method) + ("$^\\dagger$" if not r.calibrated else
                                           "$^\\ddagger$" if r.calibration.pinned_by_user else "")
            parts.append(" & ".join([name] + cells) + " \\\\")
        parts.append("\\bottomrule")
        parts.append("\\end{tabular}")
        if any(not r.calibrated for r in t.rows):
            parts.append(f"% $^\\dagger$ {UNCALIBRATED_NOTE}")
        for c in t.columns:
            groups = t.groups.get(c.key, ())
            if len(groups) > 1:
                parts.append(f"% {tex_escape(c.key.upper())}: marks compare rows within a group only; " + "; ".join(
                    f"group {tex_escape(g.label)}: " + ", ".join(tex_escape(t.rows[i].method) for i in g.rows)
                    + ("" if not g.differences else " (" + tex_escape("; ".join(g.differences)) + ")")
                    for g in groups))
        if any(r.calibrated and r.calibration.pinned_by_user for r in t.rows):
            parts.append(f"% $^\\ddagger$ calibrated with weights {PINNED_NOTE} (hash not a published one)")
    return "\n".join(parts) + "\n"


# ---------------------------------------------------------------------------------------------------- HTML
_CSS = """
:root{color-scheme:light dark;--fg:#222;--bg:#fff;--muted:#666;--faint:#888;--line:#ddd;--head:#f4f4f6;
--tab:#eef0f3;--tab-line:#bbb;--bad:#9b1c1c;--bad-bg:#fde2e1;--bad-line:#f5a3a0;--bad-row:#fff6f6;
--info:#1a3d7c;--info-bg:#e8f0fe;--info-line:#a8c0f0;--pub:#6b6b6b;--pub-bg:#f6f6f6;--warn:#8a5a00;
--link:#0b57d0;--code-bg:#f3f3f3}
@media (prefers-color-scheme:dark){:root{--fg:#e6e6e6;--bg:#15171a;--muted:#a9adb3;--faint:#8d9299;--line:#3a3e44;
--head:#22262b;--tab:#23272d;--tab-line:#4a4f57;--bad:#ff9c94;--bad-bg:#4a1f1d;--bad-line:#8c3a35;
--bad-row:#2a1d1e;--info:#a9c6ff;--info-bg:#1d2a44;--info-line:#3d5689;--pub:#a0a4aa;--pub-bg:#1d2024;
--warn:#e6b35c;--link:#8ab4f8;--code-bg:#1f2226}}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem auto;padding:0 1rem;
color:var(--fg);background:var(--bg);max-width:1400px;line-height:1.4}
a{color:var(--link)}h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:1.6rem}
.downloads a{margin-right:.8rem}
.tabs{display:flex;flex-wrap:wrap;gap:.2rem}
.tabs button{border:1px solid var(--tab-line);background:var(--tab);color:var(--fg);padding:.35rem .9rem;
cursor:pointer;border-radius:4px 4px 0 0;font:inherit}
.tabs button[aria-selected=true]{background:var(--bg);border-bottom-color:var(--bg);font-weight:600}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid var(--line);padding:.3rem .55rem;text-align:right;vertical-align:top}
th{background:var(--head)}th[data-sortable]{cursor:pointer;user-select:none}th.name,td.name{text-align:left}
th.group{text-align:center;font-weight:600;cursor:default}
table.board td.name{position:sticky;left:0;background:var(--bg);z-index:1}
td.best .v{font-weight:700}td.second .v{text-decoration:underline}
.ci{color:var(--muted);font-size:.78rem;white-space:nowrap}.n{color:var(--faint);font-size:.72rem;display:block}
.fail{color:var(--bad);font-size:.72rem;display:block}.grp{color:var(--muted);font-size:.68rem;margin-left:.15rem}
.pinned{display:inline-block;margin-left:.4rem;padding:0 .35rem;background:var(--info-bg);color:var(--info);
border:1px solid var(--info-line);border-radius:3px;font-size:.72rem;font-weight:400}
.groups{font-size:.82rem}.groups li{margin:.15rem 0}
.uncal{display:inline-block;margin-left:.4rem;padding:0 .35rem;background:var(--bad-bg);color:var(--bad);
border:1px solid var(--bad-line);border-radius:3px;font-size:.72rem;font-weight:400}
tr.uncalibrated td{background:var(--bad-row)}
tr.kind-ceiling td,tr.kind-baseline td{font-style:italic;color:var(--muted)}
table.breakdown{display:inline-table;margin:.3rem 1rem .3rem 0;font-size:.8rem}
figure.confusion{display:inline-block;margin:.3rem 1rem 0 0}
svg.confusion{background:#fff;color:#000;border-radius:4px;max-width:100%;height:auto}
table.published{margin-top:.6rem}table.published td,table.published th{color:var(--pub);background:var(--pub-bg)}
.unchecked{font-size:.7rem;color:var(--warn);margin-left:.3rem}.pubonly{font-style:italic}
.kind{display:inline-block;margin-left:.4rem;padding:0 .35rem;background:var(--info-bg);color:var(--info);
border-radius:3px;font-size:.75rem;font-style:normal}
.prov th,.gloss th{text-align:left}
.prov td,.gloss td{text-align:left;font-family:ui-monospace,monospace;font-size:.78rem}
pre{margin:0;white-space:pre-wrap;word-break:break-all;max-width:60rem}
details.repro pre{background:var(--code-bg);padding:.4rem;border-radius:3px;min-width:16rem}
.empty-why{color:var(--faint);font-size:.75rem}
.strip{display:flex;flex-wrap:wrap;align-items:flex-start;gap:.5rem;margin:.5rem 0;padding:.4rem 0;
border-top:1px solid var(--line)}
.strip-name{flex:0 0 9rem;font-weight:600;word-break:break-word}
.clip summary{list-style:none;cursor:pointer}.clip summary::-webkit-details-marker{display:none}
.clip img{display:block;width:192px;max-width:40vw;height:auto;border-radius:3px;border:1px solid var(--line)}
.clip small{display:block;color:var(--faint);font-size:.7rem;max-width:192px;overflow-wrap:anywhere}
.clip.missing{width:192px;max-width:40vw;min-height:6rem;border:1px dashed var(--line);border-radius:3px;
padding:.4rem;display:flex;flex-direction:column;justify-content:center;text-align:center}
.na{color:var(--bad);font-size:.8rem}
.pair{display:flex;flex-wrap:wrap;gap:.5rem;margin:.4rem 0}.pair figure{margin:0}
.pair video{width:320px;max-width:100%;background:#000}
.pair figcaption{font-size:.75rem;color:var(--muted)}
footer{margin-top:2rem;border-top:1px solid var(--line);padding-top:.6rem;font-size:.82rem;color:var(--muted)}
@media (max-width:700px){body{margin:.6rem auto;padding:0 .5rem;font-size:.92rem}h1{font-size:1.2rem}
table{font-size:.8rem}th,td{padding:.2rem .35rem}.strip-name{flex-basis:100%}.pair video{width:100%}}
"""

# Sorting: the first click on a metric header puts the best value first (direction from data-hib), the next click
# reverses; rows without a value always go last. The method column sorts alphabetically. A header's column is its
# data-col (the grouped header has two rows, so cellIndex is not the body column).
_JS = """
function showTab(id){document.querySelectorAll('section.dataset').forEach(function(s){s.hidden=(s.id!==id);});
document.querySelectorAll('.tabs button').forEach(function(b){var on=b.dataset.target===id;
b.classList.toggle('active',on);b.setAttribute('aria-selected',on?'true':'false');b.tabIndex=on?0:-1;});}
function sortBy(th){var table=th.closest('table'),tbody=table.tBodies[0],col=parseInt(th.dataset.col,10);
var hib=th.dataset.hib,asc;var state=th.dataset.state==='1'?'0':'1';
table.querySelectorAll('th').forEach(function(h){h.dataset.state='';});th.dataset.state=state;
if(hib==='true'){asc=state!=='1';}else if(hib==='false'){asc=state==='1';}else{asc=state==='1';}
var rows=Array.prototype.slice.call(tbody.rows);
rows.sort(function(a,b){var x=a.cells[col].dataset.sort,y=b.cells[col].dataset.sort;
if(hib===undefined){return asc?x.localeCompare(y):y.localeCompare(x);}
var ex=(x===''),ey=(y==='');if(ex||ey){return ex-ey;}x=parseFloat(x);y=parseFloat(y);return asc?x-y:y-x;});
rows.forEach(function(r){tbody.appendChild(r);});}
document.addEventListener('DOMContentLoaded',function(){
document.querySelectorAll('th[data-sortable]').forEach(function(th){
th.addEventListener('click',function(){sortBy(th);});});
var first=document.querySelector('.tabs button');if(first){showTab(first.dataset.target);}
document.querySelectorAll('.tabs button').forEach(function(b){
b.addEventListener('click',function(){showTab(b.dataset.target);});});});
"""


def _cell_html(cell: Cell, f: Callable[[float | None], str] = fmt) -> str:
    """One score cell; the value and interval at the metric's decimals (``f``), full precision on hover."""
    cls = [cell.mark] if cell.mark else []
    sort = "" if cell.value is None else repr(float(cell.value))
    title = f"{fmt(cell.value)}; n = {cell.n_videos} videos" if cell.value is not None else \
        f"n = {cell.n_videos} videos"
    if cell.n_failures:
        title += f", {failure_text(cell)}"
    if cell.ci is not None:
        level = pct(cell.ci_level) if cell.ci_level is not None else "?"
        how = CI_METHOD_NAMES.get(cell.ci_method or "", cell.ci_method)
        title += f"; {level} interval [{fmt(cell.ci[0])}, {fmt(cell.ci[1])}] ({how})"
    if cell.group is not None:
        title += f"; comparison group {cell.group}"
    if cell.note:
        title += f"; {cell.note}"
    body = f'<span class="v">{esc(f(cell.value))}</span>'
    if cell.group is not None:
        body += f'<sup class="grp">{esc(cell.group)}</sup>'
    ci = interval_text(cell, f=f)
    if ci is not None:
        body += f' <span class="ci">{esc(ci)}</span>'
    if cell.value is not None or cell.n_videos:
        body += f'<span class="n">n={esc(cell.n_videos)}</span>'
    if cell.n_failures:
        body += f'<span class="fail">{esc(f"{cell.failure_rate:.1%} failed")}</span>'
    return (f'<td class="{esc(" ".join(cls))}" data-sort="{esc(sort)}" title="{esc(title)}">{body}</td>')


def _table_html(t: Table) -> str:
    """The score table: a header row of column groups (:class:`.layout.PageLayout`), a row of metrics
    (``data-metric``), one body row per results file (``data-row-kind``), wrapped for horizontal scrolling."""
    runs = t.layout.groups([c.key for c in t.columns])
    cols = {c.key: c for c in t.columns}
    grouped = bool(runs) and not (len(runs) == 1 and runs[0][0] == "other")
    span = ' rowspan="2"' if grouped else ""
    out = [f'<div class="scroll"><table class="board"><thead><tr><th class="name" data-sortable data-col="0"{span}>'
           f"Method</th>"]
    if grouped:
        out += [f'<th class="group" colspan="{len(keys)}" data-group="{esc(name)}">{esc(heading)}</th>'
                for name, heading, keys in runs]
        out.append("</tr><tr>")
    columns = [cols[k] for _, _, keys in runs for k in keys]
    for j, c in enumerate(columns, start=1):
        direction = "higher is better" if c.higher_is_better else "lower is better"
        decimals = t.layout.decimals.get(c.key)
        shown = "" if decimals is None else f"; shown with {decimals} decimals"
        out.append(f'<th data-sortable data-col="{j}" data-metric="{esc(c.key)}" '
                   f'data-hib="{"true" if c.higher_is_better else "false"}" '
                   f'title="{esc(c.description)} ({direction}{shown})">{esc(c.key.upper())} {esc(c.arrow)}</th>')
    out.append("</tr></thead><tbody>")
    for r in t.rows:
        if r.calibrated:
            badge = "" if not r.calibration.pinned_by_user else (
                f'<span class="pinned" title="{esc(r.calibration.label())}">{esc(PINNED_NOTE)}</span>')
        else:
            badge = f'<span class="uncal" title="{esc(r.calibration.label())}">{esc(UNCALIBRATED_NOTE)}</span>'
        classes = [f"kind-{r.kind}"] + ([] if r.calibrated else ["uncalibrated"])
        kind = "" if r.kind == "method" else (
            f'<span class="kind" title="{esc(KIND_NOTES[r.kind])}">{esc(r.kind)}</span>')
        out.append(f'<tr class="{" ".join(classes)}" data-kind="{esc(r.kind)}" data-row-kind="{esc(r.kind)}">'
                   f'<td class="name" data-sort="{esc(r.method)}">{esc(r.method)}{kind}{badge}</td>')
        out += [_cell_html(r.cells[c.key], metric_formatter(t.layout, c.key)) for c in columns]
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _provenance_html(t: Table, raw_links: dict[str, str]) -> str:
    out = ['<table class="prov"><thead><tr><th class="name">Method</th><th>checkpoint sha256</th>'
           '<th>toolkit</th><th>git commit</th><th>date (UTC)</th><th>config hash</th><th>seed</th>'
           '<th>extractor weights</th><th>extractors (sha256)</th><th>raw results</th><th>how to reproduce</th>'
           '</tr></thead><tbody>']
    for r in t.rows:
        p = r.provenance
        ck = p.get("checkpoint") or {}
        exts = "; ".join(f"{e.get('key')}: {_short(e.get('sha256'))}"
                         f"{'' if e.get('calibrated') else ' (uncalibrated)'}"
                         f"{' (' + PINNED_NOTE + ')' if e.get('pinned_by') == 'user' else ''}"
                         for e in p.get("extractors") or [])
        cal = r.calibration.label() if r.calibrated else f"{UNCALIBRATED_NOTE} ({r.calibration.label()})"
        link = raw_links.get(r.source)
        link_html = f'<a href="{esc(link)}">{esc(Path(link).name)}</a>' if link else "\u2013"
        cells = [_short(ck.get("sha256") if isinstance(ck, dict) else None), p.get("toolkit_version") or "\u2013",
                 _short(p.get("git_commit")) + (" (uncommitted changes)" if p.get("git_dirty") else ""),
                 p.get("date_utc") or "\u2013", p.get("config_hash") or "\u2013",
                 "\u2013" if p.get("seed") is None else p.get("seed"), cal, exts or "\u2013"]
        out.append(f'<tr data-row-kind="{esc(r.kind)}"><td class="name">{esc(r.method)}</td>'
                   + "".join(f"<td>{esc(c)}</td>" for c in cells)
                   + f"<td>{link_html}</td><td>{_reproduce_html(p)}</td></tr>")
    out.append("</tbody></table>")
    return '<div class="scroll">' + "".join(out) + "</div>"


def _reproduce_html(provenance: Mapping[str, Any]) -> str:
    """A folded "how to reproduce" box with the row's exact command line (:func:`reproduce_text`)."""
    text = reproduce_text(provenance)
    if text is None:
        return '<span class="empty-why">no command line recorded (results file from an older version)</span>'
    return f'<details class="repro"><summary>command</summary><pre><code>{esc(text)}</code></pre></details>'


def _groups_html(t: Table) -> str:
    """The comparison groups of every column that has more than one, with what differs from group A."""
    items = []
    for c in t.columns:
        groups = t.groups.get(c.key, ())
        if len(groups) < 2:
            continue
        parts = []
        for g in groups:
            methods = ", ".join(t.rows[i].method for i in g.rows)
            what = "" if not g.differences else " \u2013 differs from A: " + "; ".join(g.differences)
            parts.append(f"<b>{esc(g.label)}</b>: {esc(methods)}{esc(what)}")
        items.append(f"<li>{esc(c.key.upper())}: " + " | ".join(parts) + "</li>")
    if not items:
        return ""
    return ('<div class="groups"><p>Rows scored differently are compared only within their group (superscript '
            'letter); marks are per group:</p><ul>' + "".join(items) + "</ul></div>")


def _glossary_html(t: Table) -> str:
    out = ['<table class="gloss"><thead><tr><th class="name">Metric</th><th>direction</th><th>definition</th>'
           '<th>protocol</th><th>methods</th></tr></thead><tbody>']
    for c in t.columns:
        groups = t.glossary.get(c.key, [])
        for i, g in enumerate(groups):
            differs = " (protocol differs between rows)" if len(groups) > 1 else ""
            out.append(f'<tr><td class="name">{esc(c.key.upper())}</td>'
                       f'<td>{esc(c.arrow)} {esc("higher" if c.higher_is_better else "lower")} is better</td>'
                       f"<td>{esc(c.description)}{esc(differs)}</td>"
                       f"<td><pre>{esc(json.dumps(g['protocol'], indent=1, sort_keys=True))}</pre></td>"
                       f"<td>{esc(', '.join(g['methods']))}</td></tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _published_html(t: Table, published: Sequence[Any]) -> str:
    """Published rows of ``t``'s dataset: greyed, never marked, the citation on hover; the table's columns first,
    then the published-only ones (metrics dicetalk_bench does not compute)."""
    from dicetalk_bench.reports.published import published_by_row

    rows = published_by_row(published, t.dataset)
    if not rows:
        return ""
    keys = t.layout.order_keys([c.key for c in t.columns])
    extra = sorted({m for vals in rows.values() for m, v in vals.items() if m not in keys})
    arrows = {v.metric: ("\u2191" if v.higher_is_better else "\u2193") for vals in rows.values() for v in vals.values()}
    arrows.update({c.key: c.arrow for c in t.columns})
    head = "".join(f"<th>{esc(k.upper())} {esc(arrows.get(k, ''))}</th>" for k in keys) + "".join(
        f'<th class="pubonly" title="reported by the source; not computed by dicetalk_bench">{esc(k.upper())} '
        f"{esc(arrows.get(k, ''))}</th>" for k in extra)
    out = ['<div class="scroll"><table class="published"><thead><tr>'
           '<th class="name">Published (not reproduced here)</th>', head,
           "</tr></thead><tbody>"]
    for (_, method), vals in rows.items():
        source = next(iter(vals.values())).source
        kind = next(iter(vals.values())).kind
        label = f' <span class="kind">{esc(kind)}</span>' if kind != "method" else ""
        flag = "" if source.checked else ' <span class="unchecked" title="{}">unchecked</span>'.format(
            esc(source.checked_note or "not checked against the paper"))
        out.append(f'<tr class="published-row" data-kind="published" data-row-kind="published" '
                   f'title="{esc(source.citation)}">'
                   f'<td class="name">{esc(method)}{label} <small>arXiv:{esc(source.arxiv)}</small>{flag}</td>')
        for k in keys + extra:
            v = vals.get(k)
            out.append("<td>\u2013</td>" if v is None else
                       f'<td title="{esc(source.citation)}">{esc(t.layout.format(k, v.value))}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div><p class=\"note\">Published numbers come from each source's own protocol "
               "(hover a "
               "row for the citation and protocol note); they are never marked and not comparable to the rows above "
               "unless the protocols match.</p>")
    return "".join(out)


def _breakdown_tables_html(r: Any, layout: PageLayout = PageLayout()) -> str:
    """Emotion x level tables (mean over videos, n) of every per-video metric of a row whose clip ids name them."""
    from dicetalk_bench.reports.breakdown import breakdown_table, manifest_from_clip_ids, per_video_frame

    parts = []
    for key, res in r.results.items():
        if not res.per_video:
            continue
        manifest = manifest_from_clip_ids(set(res.per_video) | set(res.failures))
        if manifest.empty:
            continue
        table = breakdown_table(per_video_frame(res.per_video, manifest, res.failures))
        levels = sorted({lv for _, lv in table.columns if _ == "mean"})
        head = "".join(f"<th>level {esc(lv)}</th>" for lv in levels)
        body = []
        for emotion in table.index:
            cells = []
            for lv in levels:
                n = table.loc[emotion, ("n_videos", lv)]
                mean = table.loc[emotion, ("mean", lv)]
                failed = table.loc[emotion, ("n_failed", lv)]
                if (n != n or n == 0) and (failed != failed or failed == 0):
                    cells.append("<td>\u2013</td>")
                    continue
                fail = f' <span class="fail">{int(failed)} failed</span>' if failed == failed and failed else ""
                cells.append(f'<td data-emotion="{esc(emotion)}" data-level="{esc(lv)}" data-n="{int(n)}">'
                             f'{esc(layout.format(key, None if mean != mean else float(mean)))} '
                             f'<span class="n">n={int(n)}</span>'
                             f"{fail}</td>")
            body.append(f"<tr><td>{esc(emotion)}</td>{''.join(cells)}</tr>")
        parts.append(f'<table class="breakdown" data-metric="{esc(key)}"><caption>{esc(key.upper())}</caption>'
                     f"<thead><tr><th>emotion</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
    return "".join(parts)


def _confusion_html(r: Any, ceiling: Any | None) -> str:
    """The emotion classifier's confusion matrix of a row (counts, shaded by row share), the ceiling's beside it."""
    from dicetalk_bench.reports.confusion import confusion_svg

    out = []
    for who, row in (("", r), (" (ceiling)", ceiling)):
        res = None if row is None else row.results.get("emo-acc")
        extra = {} if res is None else res.extra
        if not extra.get("confusion") or not extra.get("labels_order"):
            continue
        out.append(f'<figure class="confusion">{confusion_svg(extra["confusion"], extra["labels_order"], title=f"{row.method}{who}: emotion classifier confusion")}'
                   f"<figcaption>{esc(row.method)}{esc(who)}</figcaption></figure>")
    return "".join(out) if len(out) and r.results.get("emo-acc") is not None else ""


def per_emotion_records(r: Any) -> dict[str, Mapping[str, Any]]:
    """metric key -> the ``extra["per_emotion"]`` record stored with a row's FID/FVD at scoring time."""
    from dicetalk_bench.reports.per_emotion import PER_EMOTION_KEY

    return {k: res.extra[PER_EMOTION_KEY] for k, res in r.results.items()
            if isinstance(res.extra.get(PER_EMOTION_KEY), Mapping)}


def _per_emotion_html(r: Any, layout: PageLayout) -> str:
    """FID / FVD per emotion (computed at scoring time, :mod:`.per_emotion`): a value with n, or why it is empty."""
    records = per_emotion_records(r)
    if not records:
        return ""
    keys = layout.order_keys(list(records))
    emotions = sorted({e for rec in records.values() for e in rec.get("groups", {})})
    head = "".join(f'<th data-metric="{esc(k)}">{esc(k.upper())}</th>' for k in keys)
    body = []
    for e in emotions:
        cells = []
        for k in keys:
            g = records[k].get("groups", {}).get(e)
            if g is None:
                cells.append('<td class="empty"><span class="empty-why">no videos</span></td>')
            elif g.get("value") is None:
                cells.append(f'<td class="empty" data-emotion="{esc(e)}"><span class="empty-why">'
                             f'{esc(g.get("reason") or "no value")}</span></td>')
            else:
                unit = records[k].get("unit", "rows")
                cells.append(f'<td data-emotion="{esc(e)}" title="{esc(fmt(g["value"]))}; {esc(g["n_rows"])} '
                             f'{esc(unit)} of {esc(g["n_videos"])} videos vs {esc(g["n_reference_rows"])} reference '
                             f'{esc(unit)}">{esc(layout.format(k, g["value"]))}'
                             f'<span class="n">n={esc(g["n_videos"])}</span></td>')
        body.append(f"<tr><td>{esc(e)}</td>{''.join(cells)}</tr>")
    note = "; ".join(f"{k.upper()}: at least {records[k].get('min_rows')} {records[k].get('unit', 'rows')} per set"
                     for k in keys)
    return (f'<table class="breakdown per-emotion"><caption>per emotion, against the reference videos of the same '
            f"emotion ({esc(note)})</caption><thead><tr><th>emotion</th>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def _details_html(t: Table) -> str:
    """Per method: FID/FVD per emotion, the emotion x level breakdown and the confusion matrix, folded."""
    ceiling = next((r for r in t.rows if r.kind == "ceiling" and "emo-acc" in r.results), None)
    out = []
    for r in t.rows:
        inner = (_per_emotion_html(r, t.layout) + _breakdown_tables_html(r, t.layout)
                 + _confusion_html(r, None if r is ceiling else ceiling))
        if inner:
            out.append(f'<details class="perrow" data-method="{esc(r.method)}"><summary>{esc(r.method)}: per '
                       f"emotion and level</summary>{inner}</details>")
    return "<h2>Per emotion and level</h2>" + "".join(out) if out else ""


def tables_to_html(tables: Sequence[Table], boot: BootstrapConfig, *, title: str = "dicetalk_bench leaderboard",
                   raw_links: dict[str, str] | None = None, published: Sequence[Any] = (),
                   strips: Mapping[str, Any] | None = None, banner: str = "") -> str:
    """The whole self-contained page (``published``: :class:`~.published.PublishedValue` rows shown under each
    dataset's table; ``strips``: dataset -> :class:`~.clip_strip.Strip` of sample clips; ``banner``: a page-level
    notice shown under the title)."""
    from dicetalk_bench.reports.clip_strip import strip_html

    raw_links = raw_links or {}
    strips = strips or {}
    generated = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    ids = [f"ds-{i}" for i in range(len(tables))]
    tabs = "".join(f'<button type="button" role="tab" id="tab-{esc(i)}" aria-controls="{esc(i)}" '
                   f'aria-selected="{"true" if k == 0 else "false"}" data-target="{esc(i)}">'
                   f"{esc(t.dataset.upper())}</button>" for k, (i, t) in enumerate(zip(ids, tables)))
    sections = []
    for i, t in zip(ids, tables):
        sections.append(
            f'<section class="dataset" id="{esc(i)}" role="tabpanel" aria-labelledby="tab-{esc(i)}">'
            f"<h2>{esc(t.dataset.upper())}</h2>{_table_html(t)}{_groups_html(t)}"
            f"{_published_html(t, published)}{strip_html(strips.get(t.dataset))}{_details_html(t)}"
            f"<h2>Provenance</h2>{_provenance_html(t, raw_links)}"
            f"<h2>Metric glossary</h2>{_glossary_html(t)}</section>")
    excess = tables[0].marking.max_failure_excess if tables else 0.0
    levels = " / ".join(pct(v) for v in interval_levels(tables, boot))
    source = (f"recomputed at this page's settings ({pct(boot.level)}, {boot.resamples} resamples of "
              f"per-video values, {boot.set_resamples} of stored per-video features, seed {boot.seed})"
              if boot.recompute else f"{levels} intervals, stored with each result when it was scored (a result "
              f"stored without one: computed at this page's settings, seed {boot.seed})")
    legend = (f"Arrows give the direction (\u2191 higher is better, \u2193 lower is better). Per column the best value "
              f"is <b>bold</b> and the second best <u>underlined</u>, comparing only rows scored under the same "
              f"protocol, reference set, extractor weights and clip set (other rows are grouped, see the notes under "
              f"the table), and only rows whose share of failed videos left out of the value is at most the lowest "
              f"compared row's + {esc(points(excess))}; the failed share of videos is shown in red under "
              f"the value. Intervals over videos are {esc(source)}: "
              f"\u00b1 h where the interval is symmetric about the value, [low\u2013high] where it is not (FID/KID/FVD "
              f"intervals describe the value's spread over fresh sets of the same number of videos; docs/metrics.md); "
              f"hover a cell for the interval, its level and method, and n. Click a header to sort (best first).")
    banner_html = f'<p class="banner"><b>{esc(banner)}</b></p>' if banner else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="color-scheme" content="light dark">'
            f"<title>{esc(title)}</title><style>{_CSS}</style><script>{_JS}</script></head><body>"
            f"<h1>{esc(title)}</h1>{banner_html}<p>{legend}</p><p>Generated {esc(generated)}.</p>"
            '<p class="downloads">Download: <a href="results.json" download>results.json</a>'
            '<a href="results.csv" download>results.csv</a><a href="results.tex" download>results.tex</a> '
            '(LaTeX, booktabs)</p>'
            f'<nav class="tabs" role="tablist">{tabs}</nav>{"".join(sections)}'
            f"<footer><b>Licences.</b> {esc(LICENCE_NOTE)}</footer></body></html>\n")


def write_leaderboard(tables: Sequence[Table], out_dir: str | Path, boot: BootstrapConfig, *,
                      title: str = "dicetalk_bench leaderboard", published: Sequence[Any] = (),
                      strip: StripConfig = StripConfig(), banner: str = "") -> dict[str, Path]:
    """Write index.html, results.json, results.csv, results.tex, raw/<dataset>/<file>.json copies of the runs'
    results files and the sample clips under media/ (:mod:`.clip_strip`), so the folder is self-contained;
    returns the paths by name."""
    from dicetalk_bench.reports.clip_strip import build_strip
    from dicetalk_bench.reports.runs import safe_file_stem

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    raw_links: dict[str, str] = {}
    for t in tables:
        for r in t.rows:
            rel = f"raw/{safe_file_stem(t.dataset)}/{safe_file_stem(r.method)}.json"
            k = 2
            while rel in raw_links.values():  # two names with the same safe stem ("a<b", "a_b")
                rel = f"raw/{safe_file_stem(t.dataset)}/{safe_file_stem(r.method)}-{k}.json"
                k += 1
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(out / rel, Path(r.source).read_bytes())
            raw_links[r.source] = rel
    paths = {"html": out / "index.html", "json": out / "results.json", "csv": out / "results.csv",
             "latex": out / "results.tex"}
    strips = {t.dataset: build_strip(t, out, strip) for t in tables}
    doc = tables_to_dict(tables, boot)
    for entry in doc["datasets"]:
        s = strips.get(entry["dataset"])
        entry["sample_clips"] = None if s is None else s.to_dict()
    doc["published"] = [{"source": v.source.id, "arxiv": v.source.arxiv, "table": v.source.table,
                         "checked": v.source.checked, "method": v.method, "dataset": v.dataset, "metric": v.metric,
                         "value": v.value, "kind": v.kind, "computed_here": v.computed_here} for v in published]
    atomic_write_bytes(paths["json"], (json.dumps(json_types(doc), indent=2, allow_nan=False) + "\n").encode())
    atomic_write_bytes(paths["csv"], tables_to_csv(tables).encode())
    atomic_write_bytes(paths["latex"], tables_to_latex(tables).encode())
    atomic_write_bytes(paths["html"], tables_to_html(tables, boot, title=title, raw_links=raw_links,
                                                     published=published, strips=strips,
                                                     banner=banner).encode())
    return paths
