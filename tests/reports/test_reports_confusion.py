"""Confusion-matrix SVG: one rect per cell carrying its count, rows summing to the per-class video counts."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from dicetalk_bench.reports.confusion import confusion_from_predictions, confusion_svg, row_normalised

LABELS = ["angry", "contempt", "disgusted", "fear", "happy", "neutral", "sad", "surprised"]


def test_svg_cells_and_row_sums():
    rng = np.random.default_rng(0)
    truth = {f"c{i}": LABELS[rng.integers(8)] for i in range(60)}
    pred = {c: (t if rng.random() < 0.5 else LABELS[rng.integers(8)]) for c, t in truth.items()}
    m = confusion_from_predictions(truth, pred, LABELS)
    svg = confusion_svg(m, LABELS, title="<b>method</b> & co")
    root = ET.fromstring(svg)  # well-formed XML
    rects = [e for e in root.iter() if e.tag.endswith("rect")]
    assert len(rects) == 64
    counts = np.zeros((8, 8), int)
    for r in rects:
        counts[int(r.get("data-row")), int(r.get("data-col"))] = int(r.get("data-count"))
    np.testing.assert_array_equal(counts, m)
    per_class = {name: sum(1 for t in truth.values() if t == name) for name in LABELS}
    assert [int(s) for s in counts.sum(axis=1)] == [per_class[n] for n in LABELS]
    assert "<b>" not in svg and "&lt;b&gt;method&lt;/b&gt; &amp; co" in svg


def test_row_normalised_and_bad_shapes():
    rates = row_normalised(np.array([[2, 2], [0, 0]]))
    np.testing.assert_allclose(rates, [[0.5, 0.5], [0.0, 0.0]])
    with pytest.raises(ValueError, match="does not match"):
        confusion_svg(np.zeros((3, 3)), LABELS, title="t")
    with pytest.raises(ValueError, match="non-negative integers"):
        confusion_svg(-np.ones((2, 2)), ["a", "b"], title="t")
    assert re.search(r'data-count="0"', confusion_svg(np.zeros((2, 2), int), ["a", "b"], title="t"))


def test_unclassified_videos_are_not_counted():
    m = confusion_from_predictions({"a": "sad", "b": "sad"}, {"a": "happy", "b": None}, LABELS)
    assert m.sum() == 1 and m[LABELS.index("sad"), LABELS.index("happy")] == 1
