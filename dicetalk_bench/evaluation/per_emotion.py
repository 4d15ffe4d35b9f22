"""The emotion of each scored clip, and FID/FVD per emotion stored in the results (the page's emotion breakdown)."""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from dicetalk_bench.evaluation.config import EvalConfig


def emotion_map(cfg: EvalConfig, results: Sequence[Any]) -> dict[str, str]:
    """clip id -> emotion of the scored clips: the clip manifest's column with ``cfg.processed``
    (:func:`dicetalk_bench.preprocessing.load_manifest`), else parsed from MEAD clip ids; empty when neither
    names an emotion (e.g. HDTF)."""
    if cfg.processed is not None:
        from dicetalk_bench.preprocessing import load_manifest

        try:
            frame = load_manifest(cfg.processed, status=None)
        except FileNotFoundError:
            frame = None
        if frame is not None and "emotion" in frame.columns:
            return {str(c): str(e) for c, e in zip(frame["clip_id"], frame["emotion"]) if isinstance(e, str)}
    from dicetalk_bench.reports.breakdown import manifest_from_clip_ids

    ids: set[str] = set()
    for r in results:
        ids |= set(r.features or ()) | set(r.reference_features or ()) | set(r.clip_ids) | set(r.per_video)
    frame = manifest_from_clip_ids(sorted(ids))
    return dict(zip(frame["clip_id"], frame["emotion"]))


def with_per_emotion(results: Sequence[Any], emotions: dict[str, str]) -> list[Any]:
    """``results`` with FID/FVD per emotion stored in ``extra["per_emotion"]``
    (:mod:`dicetalk_bench.reports.per_emotion`); unchanged when ``emotions`` is empty."""
    from dicetalk_bench.reports.per_emotion import PER_EMOTION_KEY, per_emotion_record

    out = []
    for r in results:
        record = per_emotion_record(r, emotions) if emotions else None
        out.append(r if record is None else dataclasses.replace(r, extra={**r.extra, PER_EMOTION_KEY: record}))
    return out
