"""The folded "per emotion and level" section of a dataset on the leaderboard page.

Per method: FID / FVD per emotion (computed at scoring time, :mod:`.per_emotion`), the emotion x level tables of
every per-video metric (:mod:`.breakdown`) and the emotion classifier's confusion matrix (:mod:`.confusion`).
"""

from __future__ import annotations

from typing import Any

from dicetalk_bench.reports.cell_text import esc
from dicetalk_bench.reports.layout import PageLayout, fmt
from dicetalk_bench.reports.leaderboard import Table
from dicetalk_bench.reports.per_emotion import per_emotion_records


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


def details_html(t: Table) -> str:
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
