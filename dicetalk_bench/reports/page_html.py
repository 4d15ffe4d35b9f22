"""Leaderboard tables -> the self-contained ``index.html``: dataset tabs, the score table, comparison groups,
published rows, sample clips, per-emotion details, provenance and the metric glossary.

The page has inline CSS and JS only (:mod:`.page_assets`, no network assets) and opens from disk. Every string that
comes from a results file or the registry goes through :func:`.cell_text.esc` (``html.escape`` with quotes),
including attribute values; numbers are formatted here. Directions, arrows, marks and CIs come from
:mod:`.leaderboard`, never from the template.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from dicetalk_bench.reports.cell_text import (PINNED_NOTE, UNCALIBRATED_NOTE, esc, failure_text, interval_text,
                                              metric_formatter, pct, reproduce_text, short_hash)
from dicetalk_bench.reports.comparability import points
from dicetalk_bench.reports.layout import fmt
from dicetalk_bench.reports.leaderboard import BootstrapConfig, Cell, Table
from dicetalk_bench.reports.page_assets import PAGE_CSS, PAGE_JS
from dicetalk_bench.reports.page_details import details_html

CI_METHOD_NAMES = {"percentile-bootstrap-mean-over-videos": "percentile bootstrap of the mean over videos",
                   "bias-centred-bootstrap-over-videos": "bias-centred bootstrap over videos (docs/metrics.md)"}
KIND_NOTES = {"ceiling": "the real test videos scored as a method: what a perfect method would reach (never marked)",
              "baseline": "a trivial method built from the test clips: what a method must beat (never marked)"}
LICENCE_NOTE = ("DICE-Talk and Sonic model weights are licensed CC BY-NC-SA 4.0 (non-commercial, share-alike); "
                "MEAD may be used for non-commercial research only, under its licence terms; HDTF clips come from "
                "YouTube videos under their owners' terms. Scores computed with uncalibrated (random or unverified) "
                "extractor weights are not comparable to published numbers.")


def interval_levels(tables: Sequence[Table], boot: BootstrapConfig) -> list[float]:
    """The levels of the intervals shown (stored intervals keep their own level); ``boot.level`` when none."""
    levels = sorted({c.ci_level for t in tables for r in t.rows for c in r.cells.values() if c.ci_level is not None})
    return levels or [boot.level]


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
        exts = "; ".join(f"{e.get('key')}: {short_hash(e.get('sha256'))}"
                         f"{'' if e.get('calibrated') else ' (uncalibrated)'}"
                         f"{' (' + PINNED_NOTE + ')' if e.get('pinned_by') == 'user' else ''}"
                         for e in p.get("extractors") or [])
        cal = r.calibration.label() if r.calibrated else f"{UNCALIBRATED_NOTE} ({r.calibration.label()})"
        link = raw_links.get(r.source)
        link_html = f'<a href="{esc(link)}">{esc(Path(link).name)}</a>' if link else "\u2013"
        cells = [short_hash(ck.get("sha256") if isinstance(ck, dict) else None), p.get("toolkit_version") or "\u2013",
                 short_hash(p.get("git_commit")) + (" (uncommitted changes)" if p.get("git_dirty") else ""),
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
            f"{_published_html(t, published)}{strip_html(strips.get(t.dataset))}{details_html(t)}"
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
            f"<title>{esc(title)}</title><style>{PAGE_CSS}</style><script>{PAGE_JS}</script></head><body>"
            f"<h1>{esc(title)}</h1>{banner_html}<p>{legend}</p><p>Generated {esc(generated)}.</p>"
            '<p class="downloads">Download: <a href="results.json" download>results.json</a>'
            '<a href="results.csv" download>results.csv</a><a href="results.tex" download>results.tex</a> '
            '(LaTeX, booktabs)</p>'
            f'<nav class="tabs" role="tablist">{tabs}</nav>{"".join(sections)}'
            f"<footer><b>Licences.</b> {esc(LICENCE_NOTE)}</footer></body></html>\n")

