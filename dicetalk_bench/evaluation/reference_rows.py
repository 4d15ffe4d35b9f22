"""Rows built from the real test clips rather than a method's output: the ceiling (``--real``: the real clips scored
as a method) and the baselines (``--baseline``: still frame, shuffled or shifted audio;
:mod:`dicetalk_bench.baselines`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from dicetalk_bench.evaluation.config import EvalConfig, EvaluateError
from dicetalk_bench.evaluation.split import link_or_copy, linked_reference, read_test_rows

SET_METRICS = ("fid", "kid", "fvd")  # distribution metrics: the ceiling compares two disjoint halves of the split


def split_halves(clip_ids: Sequence[str], seed: int) -> tuple[list[str], list[str]]:
    """Two disjoint halves of ``clip_ids`` (a seeded permutation; the first gets the extra clip when odd)."""
    import numpy as np

    ids = sorted(clip_ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    cut = (len(ids) + 1) // 2
    return sorted(ids[i] for i in order[:cut]), sorted(ids[i] for i in order[cut:])


def reference_row_videos(cfg: EvalConfig, out_dir: Path) -> tuple[Path, Path, dict[str, Any]]:
    """Videos of a ceiling (``cfg.real``) or baseline (``cfg.baseline``) row built from the processed test clips.

    Returns (videos folder, reference folder, the provenance fields of the row: ``row_kind`` and its record)."""
    from dicetalk_bench.baselines import build_baseline
    from dicetalk_bench.model.split_generation import make_jobs

    processed = Path(cfg.processed)
    rows = read_test_rows(processed, cfg.dataset)
    if cfg.max_clips is not None:
        rows = rows[: cfg.max_clips]
    make_jobs(rows, cfg.dataset, "test")  # clip ids validated before they become paths
    reference = linked_reference(cfg, out_dir, rows)
    if cfg.real:
        return reference, reference, {"row_kind": "ceiling", "ceiling": {"n_test_clips": len(rows)}}
    clips = {row["clip_id"]: processed / row["video"] for row in rows}
    folder, record = build_baseline(cfg.baseline, clips, out_dir / "baselines" / cfg.dataset / cfg.baseline,
                                    seed=cfg.seed)
    if record["n_written"] + record["n_reused"] == 0:
        raise EvaluateError(f"the {cfg.baseline} baseline could not be built for any of the {len(rows)} test clips "
                            f"(e.g. {next(iter(record['failures'].items()))})")
    return folder, reference, {"row_kind": "baseline", "baseline": record}


def score_ceiling(cfg: EvalConfig, request: Any, row: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """Score the real test clips as a method: per-video metrics against themselves; FID/KID/FVD of one half of the
    split against the other (:func:`split_halves`, seeded by ``cfg.seed``; recorded in ``row``).

    ``request`` is the :class:`~dicetalk_bench.metrics.registry.ScoreRequest` of the row; returns (results in the
    order of ``cfg.metrics``, names of failed metrics)."""
    from dicetalk_bench.metrics.registry import required_weights
    from dicetalk_bench.metrics.scoring import score_metrics
    from dicetalk_bench.metrics.video_set import list_videos

    names = list(cfg.metrics)
    per_video = [n for n in names if n not in SET_METRICS]
    set_names = [n for n in names if n in SET_METRICS]
    results: list[Any] = []
    failed: list[str] = []

    def options_for(set_metrics: bool) -> dict[str, Any]:  # each call is checked against the options it reads
        return {k: v for k, v in request.options.items() if (k.split(".")[0] in SET_METRICS) == set_metrics}

    def weights_for(set_metrics: bool) -> dict[str, str]:  # leave out the weights only the other call reads
        mine = set(required_weights(set_names if set_metrics else per_video, options_for(set_metrics)))
        theirs = set(required_weights(per_video if set_metrics else set_names, options_for(not set_metrics)))
        return {k: v for k, v in request.weights.items() if k in mine or k not in theirs}

    if per_video:
        r, f = score_metrics(per_video, dataclasses.replace(request, options=options_for(False),
                                                            weights=weights_for(False)), keep_going=cfg.keep_going)
        results += r
        failed += f
    if set_names:
        videos = list_videos(request.videos)
        half_a, half_b = split_halves(videos.clip_ids, cfg.seed)
        halves = Path(cfg.out) / "ceiling_halves" / cfg.dataset
        for name, ids in (("a", half_a), ("b", half_b)):
            by_id = {e.clip_id: e.path for e in videos}
            for cid in ids:
                link_or_copy(by_id[cid], halves / name / f"{cid}{by_id[cid].suffix}")
        r, f = score_metrics(set_names, dataclasses.replace(request, videos=halves / "a", reference=halves / "b",
                                                            options=options_for(True), weights=weights_for(True)),
                             keep_going=cfg.keep_going)
        results += r
        failed += f
        row["ceiling"] = {**row.get("ceiling", {}), "set_metrics": "one half of the test split against the other",
                          "half_a": half_a, "half_b": half_b, "split_seed": cfg.seed}
    order = {n: i for i, n in enumerate(names)}
    return sorted(results, key=lambda r: order.get(r.key, len(order))), failed
