"""Emotion x level breakdown equals group means computed independently with plain Python."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd

from dicetalk_bench.reports.breakdown import breakdown_table, per_video_frame


def test_breakdown_equals_independent_group_means():
    rng = np.random.default_rng(1)
    emotions, levels = ["angry", "happy", "sad"], [1, 2, 3]
    rows, per_video, failures = [], {}, {}
    for i in range(90):
        cid = f"mead/M003/front/x/level_{i}"
        e, lv = emotions[rng.integers(3)], levels[rng.integers(3)]
        rows.append({"clip_id": cid, "emotion": e, "level": lv})
        if rng.random() < 0.1:
            failures[cid] = "no face"
        else:
            per_video[cid] = float(rng.normal(30, 3))
    manifest = pd.DataFrame(rows + [{"clip_id": "not-scored", "emotion": "sad", "level": 1}])
    per_video["unknown-clip"] = 1.0
    frame = per_video_frame(per_video, manifest, failures)
    assert frame.attrs["unmatched"] == 1
    table = breakdown_table(frame)
    sums, counts, failed = defaultdict(float), defaultdict(int), defaultdict(int)
    for r in rows:
        key = (r["emotion"], r["level"])
        if r["clip_id"] in failures:
            failed[key] += 1
        else:
            sums[key] += per_video[r["clip_id"]]
            counts[key] += 1
    for (e, lv), n in counts.items():
        assert math.isclose(table.loc[e, ("mean", lv)], sums[(e, lv)] / n, rel_tol=1e-12)
        assert table.loc[e, ("n_videos", lv)] == n
    for (e, lv), n in failed.items():
        assert table.loc[e, ("n_failed", lv)] == n
    assert list(table.index) == sorted(emotions)
