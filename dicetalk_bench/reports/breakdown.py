"""Per-emotion and per-level breakdown of per-video metric values (pandas), joined with the clip manifest.

A per-video metric's value on a group is the mean of its per-video values over the group's clips (the same
aggregation as the headline number); failed videos are counted per group, not averaged in. A set metric (FID, FVD,
KID) has no per-video values: its group cells are computed by the caller from the group's features, or left empty
with the reason (e.g. "12 videos < minimum 50").
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

GROUP_COLUMNS = ("emotion", "level")


def per_video_frame(per_video: Mapping[str, float], manifest: pd.DataFrame,
                    failures: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per clip: ``clip_id, value`` (NaN for failed clips), ``failed``, and the manifest's group columns.

    ``manifest`` needs ``clip_id`` and the :data:`GROUP_COLUMNS`; clips missing from it are dropped with their
    count returned in ``frame.attrs["unmatched"]``.
    """
    failures = failures or {}
    ids = sorted(set(per_video) | set(failures))
    frame = pd.DataFrame({"clip_id": ids,
                          "value": [float(per_video[c]) if c in per_video else float("nan") for c in ids],
                          "failed": [c in failures for c in ids]})
    cols = ["clip_id", *GROUP_COLUMNS]
    missing = [c for c in cols if c not in manifest.columns]
    if missing:
        raise ValueError(f"manifest lacks columns {missing}")
    merged = frame.merge(manifest[cols], on="clip_id", how="inner")
    merged.attrs["unmatched"] = len(frame) - len(merged)
    return merged


def breakdown_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Emotion x level table of (mean, n_videos, n_failed) from :func:`per_video_frame`'s output.

    Returns a frame indexed by emotion with a column MultiIndex (statistic, level); emotions and levels sorted.
    """
    g = frame.groupby(list(GROUP_COLUMNS), dropna=False)
    stats = pd.DataFrame({"mean": g["value"].mean(), "n_videos": g["value"].count(), "n_failed": g["failed"].sum()})
    return stats.unstack("level").sort_index(axis=0).sort_index(axis=1)


def manifest_from_clip_ids(clip_ids) -> pd.DataFrame:
    """``clip_id, emotion, level`` parsed from MEAD clip ids (``mead/{speaker}/{view}/{emotion}/level_{n}/...``;
    :data:`dicetalk_bench.datasets.MEAD_CLIP_ID`); ids of another form are left out. For results whose clip ids are
    the preprocessing's, this equals the manifest's columns (use :func:`dicetalk_bench.preprocessing.load_manifest`
    where the manifest is at hand)."""
    from dicetalk_bench.datasets import MEAD_CLIP_ID

    rows = []
    for cid in clip_ids:
        m = MEAD_CLIP_ID.match(str(cid))
        if m:
            rows.append({"clip_id": str(cid), "emotion": m["emotion"], "level": int(m["level"])})
    return pd.DataFrame(rows, columns=["clip_id", "emotion", "level"])
