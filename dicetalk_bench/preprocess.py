"""Command line: raw MEAD / HDTF -> face clips, face tracks, audio features and manifests.

    python -m dicetalk_bench.preprocess --dataset mead --root RAW --out OUT [--views front ...]
        [--speakers M003 ...] [--workers N | --scheduler tcp://HOST:8786] [--whisper DIR | random:SEED]
        [--config preprocess.yaml] [--set crop.size=256 ...] [--dry-run]

Every pretrained file the run needs (BlazeFace, Whisper-tiny, FAN with ``--set fan=true``) is resolved from the
weights registry before any worker starts; a missing one stops the run with the fetch or download instructions.
``--whisper random:SEED`` (an uncalibrated random encoder, for smoke runs and the demo) is used only when asked,
and then recorded in every output. See docs/preprocessing.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dicetalk_bench.preprocess", description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=("mead", "hdtf"), required=True)
    p.add_argument("--root", type=Path, required=True, help="raw dataset folder (MEAD: folder of actors; HDTF: "
                   "videos + annotation files); for the built-in demo, build it first with "
                   "python -m dicetalk_bench.demo_data --out DIR and pass DIR/mead or DIR/hdtf")
    p.add_argument("--out", type=Path, required=True, help="output folder (resumable: rerun to continue)")
    p.add_argument("--views", nargs="+", help="MEAD views to process (default: all 7)")
    p.add_argument("--speakers", nargs="+", help="speaker ids to process (MEAD M003 ...; HDTF WDA_BarackObama ...)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=2, help="local Dask worker processes, one thread each; 0 runs "
                   "serially in this process (default 2)")
    g.add_argument("--scheduler", help="address of a running Dask scheduler (tcp://host:8786) instead of a local cluster")
    p.add_argument("--whisper", help="whisper-tiny transformers folder, or random:SEED for an uncalibrated random "
                   "encoder (smoke runs only; recorded in every output). Default: the config's audio.whisper, else "
                   "the registry's whisper-tiny ($DICETALK_BENCH_WEIGHTS_DIR/whisper-tiny); missing -> stop")
    p.add_argument("--allow-unverified", action="store_true", help="accept weights whose sha256 is not pinned")
    p.add_argument("--config", type=Path, help="YAML file with PreprocessConfig fields")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. crop.size=256 or faces.stride=1 (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="list the work (tasks to do / already done) and exit")
    p.add_argument("--performance-report", type=Path, help="write a Dask performance report (HTML) here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("dicetalk_bench.preprocess")
    if args.workers < 0:
        print(f"error: --workers must be >= 0, got {args.workers}", file=sys.stderr)
        return 2

    from dicetalk_bench.config import ConfigError, load_config
    from dicetalk_bench.preprocessing import pipeline
    from dicetalk_bench.preprocessing.manifest import DiscoveryError, filter_clips

    overrides = list(args.overrides) + ([f"audio.whisper={args.whisper}"] if args.whisper else [])
    try:
        cfg = load_config(pipeline.PreprocessConfig, args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    root = args.root
    if not root.is_dir():
        print(f"error: --root {root} is not a folder (the raw {args.dataset.upper()} download; for the built-in "
              f"demo run python -m dicetalk_bench.demo_data --out DIR first and pass DIR/{args.dataset})",
              file=sys.stderr)
        return 2

    try:
        if args.dataset == "mead":
            from dicetalk_bench.preprocessing.discovery_mead import discover_mead

            found = discover_mead(root)
        else:
            from dicetalk_bench.preprocessing.discovery_hdtf import discover_hdtf

            found = discover_hdtf(root)
    except DiscoveryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    clips = filter_clips(found.clips, speakers=args.speakers, views=args.views)
    if found.unexpected:
        log.warning("%d unexpected files/folders were skipped (listed above)", len(found.unexpected))
    if not clips:
        print(f"error: no clips found under {root} for speakers={args.speakers} views={args.views}", file=sys.stderr)
        return 2

    try:  # every weights file, before anything is written or any worker starts
        pipeline.validate_config(cfg)
        records = pipeline.preflight_weights(cfg, allow_unverified=args.allow_unverified)
    except pipeline.PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    if args.dry_run:
        p = pipeline.plan(clips, args.out, cfg, allow_unverified=args.allow_unverified,
                          whisper_record=records["whisper"])
        todo = {t.task_id + ("" if isinstance(t, pipeline.VideoTask) else " [audio]") for t in p.todo}
        for t in [*p.audio_tasks, *p.video_tasks]:
            label = t.task_id + ("" if isinstance(t, pipeline.VideoTask) else " [audio]")
            print(f"{'todo' if label in todo else 'done'}  {label}")
        print(f"{len(p.todo)} of {len(p.audio_tasks) + len(p.video_tasks)} tasks to do "
              f"({len(clips)} clips, {len(found.unexpected)} unexpected files)")
        return 0

    try:
        summary = pipeline.run(clips, root, args.out, cfg, workers=args.workers, scheduler=args.scheduler,
                               progress=not args.no_progress, performance_report=args.performance_report,
                               allow_unverified=args.allow_unverified, weights_records=records)
    except pipeline.PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log.info("done in %.1f s: %d tasks, %d run, %d ok, %d failed; manifest %s", summary.elapsed_s, summary.n_tasks,
             summary.n_todo, summary.n_ok, summary.n_failed, summary.manifest)
    if summary.n_failed:
        log.warning("%d tasks failed; reasons in %s", summary.n_failed, summary.failures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
