"""A confusion matrix as inline SVG (pure string building; no plotting library, no scripts).

Rows are the true classes, columns the predicted ones. Each cell shows the count and is shaded by the row-normalised
rate (the share of that true class predicted as the column's class), so classes with fewer videos read the same as
the others. Every ``<rect>`` carries ``data-row``, ``data-col``, ``data-count`` and a ``<title>`` with the numbers,
so the page and its tests can read the matrix back.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

CELL_PX = 34
LABEL_PX = 78


def row_normalised(counts: np.ndarray) -> np.ndarray:
    """(K, K) counts -> (K, K) rates per row; an empty row stays 0."""
    counts = np.asarray(counts, dtype=np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def confusion_svg(counts: Sequence[Sequence[int]] | np.ndarray, labels: Sequence[str], *, title: str) -> str:
    """Inline ``<svg>`` of a (K, K) confusion matrix of video counts with ``labels`` (K,) for rows and columns.

    Raises ValueError when the matrix is not square, not K x len(labels), or holds negative or non-integer counts.
    """
    m = np.asarray(counts)
    k = len(labels)
    if m.ndim != 2 or m.shape != (k, k):
        raise ValueError(f"confusion matrix of shape {m.shape} does not match {k} labels")
    if m.size and (np.any(m < 0) or np.any(m != np.round(m))):
        raise ValueError("confusion matrix counts must be non-negative integers")
    m = m.astype(np.int64)
    rates = row_normalised(m)
    size = LABEL_PX + k * CELL_PX
    esc = html.escape
    parts = [f'<svg class="confusion" xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size + 16}" '
             f'viewBox="0 0 {size} {size + 16}" role="img" aria-label="{esc(title)}">',
             f'<title>{esc(title)}</title>',
             f'<text x="{LABEL_PX}" y="11" font-size="10">predicted \u2192 (rows: true class; shade: row share)</text>']
    top = 16 + LABEL_PX
    for j, name in enumerate(labels):
        x = LABEL_PX + j * CELL_PX + CELL_PX / 2
        parts.append(f'<text x="{x:.0f}" y="{top - 4}" font-size="9" text-anchor="start" '
                     f'transform="rotate(-60 {x:.0f} {top - 4})">{esc(name)}</text>')
    for i, name in enumerate(labels):
        y = top + i * CELL_PX
        parts.append(f'<text x="{LABEL_PX - 4}" y="{y + CELL_PX / 2 + 3:.0f}" font-size="9" '
                     f'text-anchor="end">{esc(name)} ({int(m[i].sum())})</text>')
        for j in range(k):
            x = LABEL_PX + j * CELL_PX
            rate = float(rates[i, j])
            shade = int(round(255 - 200 * rate))
            fill = f"rgb({shade},{shade},255)" if i != j else f"rgb({shade},255,{shade})"
            tip = f"true {name}, predicted {labels[j]}: {int(m[i, j])} videos ({100 * rate:.0f}% of the row)"
            parts.append(f'<rect x="{x}" y="{y}" width="{CELL_PX - 1}" height="{CELL_PX - 1}" fill="{fill}" '
                         f'data-row="{i}" data-col="{j}" data-count="{int(m[i, j])}"><title>{esc(tip)}</title></rect>')
            if m[i, j]:
                ink = "#fff" if rate > 0.6 else "#000"
                parts.append(f'<text x="{x + CELL_PX / 2:.0f}" y="{y + CELL_PX / 2 + 3:.0f}" font-size="10" '
                             f'text-anchor="middle" fill="{ink}">{int(m[i, j])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def confusion_from_predictions(truth: dict[str, str], predicted: dict[str, str | None],
                               labels: Sequence[str]) -> np.ndarray:
    """(K, K) counts from clip id -> true label and clip id -> predicted label (None: not classified, skipped)."""
    index = {name: i for i, name in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), np.int64)
    for clip_id, true_label in truth.items():
        pred = predicted.get(clip_id)
        if pred is None or true_label not in index or pred not in index:
            continue
        m[index[true_label], index[pred]] += 1
    return m
