"""One evaluation run: generate the videos (``--checkpoint``) or build a row from the test clips (``--real``,
``--baseline``), score them, and write the results file with its provenance and the resolved config beside it."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Sequence

from dicetalk_bench.evaluation.config import EvalConfig
from dicetalk_bench.evaluation.generation import generate_test_split, generated_dir
from dicetalk_bench.evaluation.per_emotion import emotion_map, with_per_emotion
from dicetalk_bench.evaluation.reference_rows import reference_row_videos, score_ceiling

logger = logging.getLogger("dicetalk_bench.evaluate")


def run_evaluation(cfg: EvalConfig, argv: Sequence[str]) -> tuple[Path, int]:
    """Generate (with a checkpoint) and score; returns (results file, exit code of the scoring: 1 when a metric
    failed under ``cfg.keep_going``).

    Writes ``<cfg.out>/results/<dataset>/<method>.json`` (``argv`` is recorded in its provenance), the config as
    ``<method>.config.yaml`` beside it and the reference features under ``results/reference_features/``. The cheap
    checks (the results file name, the checkpoint's kind, the options, every weights file) run before anything is
    generated or decoded; a failure raises and leaves no results file."""
    from dicetalk_bench.config import config_hash, save_config
    from dicetalk_bench.metrics.preflight import check_weights
    from dicetalk_bench.metrics.registry import ScoreRequest, check_options
    from dicetalk_bench.metrics.scoring import score_metrics
    from dicetalk_bench.metrics.video_set import list_videos
    from dicetalk_bench.reports.provenance import build_provenance
    from dicetalk_bench.reports.runs import check_results_target, safe_file_stem, write_run

    out_dir = Path(cfg.out)
    cache_dir = None if cfg.cache_dir is None else Path(cfg.cache_dir)
    # where the videos will be (generate_test_split / reference_row_videos write them); until then the weights
    # pre-flight sizes the face detector from the processed clips
    planned = (generated_dir(out_dir, cfg.dataset, cfg.method, check=False) if cfg.checkpoint is not None
               else Path(cfg.processed) / "videos" if cfg.processed else None)
    request = ScoreRequest(videos=Path(cfg.videos) if cfg.videos else planned,
                           reference=None if cfg.reference is None else Path(cfg.reference),
                           weights=dict(cfg.weights), allow_unverified=cfg.allow_unverified, device=cfg.device,
                           seed=cfg.seed, batch_size=cfg.batch_size, force_small_set=cfg.force_small_set,
                           cache_dir=cache_dir, options=dict(cfg.options), workers=cfg.workers,
                           scheduler=cfg.scheduler)
    results_root = out_dir / "results"
    results_dir = results_root / cfg.dataset
    stem = safe_file_stem(cfg.method)
    path = results_dir / f"{stem}.json"
    # cheap checks first: the results file name, the checkpoint's kind, the options and every weights file the
    # metrics need, before anything is generated or decoded
    check_results_target(path, cfg.method)
    if cfg.checkpoint is not None:
        from dicetalk_bench.model.checkpoint_kind import generator_checkpoint

        generator_checkpoint(cfg.checkpoint, command="evaluate --checkpoint")
    check_options(list(cfg.metrics), request.options)
    check_weights(list(cfg.metrics), request)
    checkpoint_record = None
    row = {"row_kind": "method"}
    if cfg.checkpoint is not None:
        videos, reference, checkpoint_record = generate_test_split(cfg, out_dir)
        request = dataclasses.replace(request, videos=videos, reference=reference)
    elif cfg.baseline is not None or cfg.real:
        videos, reference, row = reference_row_videos(cfg, out_dir)
        request = dataclasses.replace(request, videos=videos, reference=reference)
    else:
        videos, reference = request.videos, request.reference
    if cfg.real:
        results, failed = score_ceiling(cfg, request, row)
    else:
        results, failed = score_metrics(list(cfg.metrics), request, keep_going=cfg.keep_going)
    results = with_per_emotion(results, emotion_map(cfg, results))
    provenance = build_provenance(method=cfg.method, dataset=cfg.dataset, seed=cfg.seed, argv=argv,
                                  config_hash=config_hash(cfg), results=results, checkpoint=checkpoint_record,
                                  videos_sha256=list_videos(videos).manifest_hash(),
                                  extra={"config_file": f"{stem}.config.yaml",
                                         # where the scored and the reference videos are (the page's clip strip)
                                         "videos": str(Path(videos).resolve()),
                                         "reference": None if reference is None else str(Path(reference).resolve())})
    provenance = {**provenance, **row}
    save_config(cfg, results_dir, name=f"{stem}.config.yaml")
    write_run(results, path, method=cfg.method, dataset=cfg.dataset, provenance=provenance,
              reference_store=results_root / "reference_features")
    logger.info("wrote %s", path)
    return path, 1 if failed else 0
