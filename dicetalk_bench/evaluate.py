"""Score a method's videos into a results file, and build the HTML leaderboard from results files.

    python -m dicetalk_bench.evaluate --videos DIR --reference DIR --metrics psnr,ssim,fid --method NAME \\
        --dataset mead --out OUTDIR [--weights KEY=PATH] [--allow-unverified] [--seed S] [--leaderboard]
    python -m dicetalk_bench.evaluate --checkpoint CKPT --processed PREPROCESSED_DIR --metrics ... (generate the
        test split of --dataset from a trained checkpoint first, then score it)
    python -m dicetalk_bench.evaluate leaderboard --results OUTDIR/results --out OUTDIR/leaderboard

Scoring writes ``OUTDIR/results/<dataset>/<method>.json`` (the metrics results document plus method, dataset and
a provenance record, in one atomic write; docs/evaluation.md), the resolved config beside it
(``<method>.config.yaml``) and each reference feature set once to ``OUTDIR/results/reference_features/``. A method
whose file name would clash with another method's results is refused before anything runs. Metrics are
computed by :mod:`dicetalk_bench.metrics` (registry + :mod:`~dicetalk_bench.metrics.scoring`). This module only
parses the arguments and calls the library, :mod:`dicetalk_bench.evaluation`
(:func:`~dicetalk_bench.evaluation.run.run_evaluation`, :func:`~dicetalk_bench.evaluation.leaderboard.run_leaderboard`).
Arguments are parsed before anything heavy is imported, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from dicetalk_bench.cli_args import HelpFormatter, key_value, non_negative_int, positive_int, scalar
from dicetalk_bench.cli_errors import run_cli
# the library behind this command line (each module imports its heavy dependencies when called); the names are
# importable from here too, as they were before the library moved to dicetalk_bench.evaluation
from dicetalk_bench.evaluation.config import DATASETS, EvalConfig, EvaluateError
from dicetalk_bench.evaluation.generation import generate_test_split, generated_dir
from dicetalk_bench.evaluation.leaderboard import run_leaderboard
from dicetalk_bench.evaluation.per_emotion import emotion_map, with_per_emotion
from dicetalk_bench.evaluation.reference_rows import reference_row_videos, score_ceiling, split_halves
from dicetalk_bench.evaluation.run import run_evaluation
from dicetalk_bench.evaluation.summary import print_summary

__all__ = ["DATASETS", "EvalConfig", "EvaluateError", "build_leaderboard_parser", "build_score_parser",
           "emotion_map", "generate_test_split", "generated_dir", "main", "print_summary", "reference_row_videos",
           "run_evaluation", "run_leaderboard", "score_ceiling", "split_halves", "with_per_emotion"]

SUBCOMMANDS_HELP = """subcommands:
  score (the default, the word may be left out)
      score a method's videos (--videos), or generate the test split from a trained checkpoint first
      (--checkpoint), or score a ceiling (--real) or baseline (--baseline) row built from the test clips; writes
      OUTDIR/results/<dataset>/<method>.json with a provenance record and prints a summary table
  leaderboard
      build the static leaderboard (index.html, results.json/.csv/.tex) from results files:
      python -m dicetalk_bench.evaluate leaderboard --results OUTDIR/results --out OUTDIR/leaderboard
      (see python -m dicetalk_bench.evaluate leaderboard --help)"""


# ------------------------------------------------------------------------------------------------------- parsing


def _level(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1), got {v}")
    return v



def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {v}")
    return v


def build_score_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dicetalk_bench.evaluate",
        usage="%(prog)s [score] (--videos DIR | --checkpoint CKPT | --baseline KIND | --real) --metrics M,... "
              "--method NAME --dataset {mead,hdtf} --out OUTDIR [options]\n"
              "       %(prog)s leaderboard --results OUTDIR/results --out OUTDIR/leaderboard [options]",
        description=SUBCOMMANDS_HELP,
        formatter_class=HelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--videos", type=Path, help="folder of the method's generated videos (clip id = relative "
                                                "path without suffix)")
    src.add_argument("--checkpoint", type=Path, help="trained checkpoint (step folder or run folder): generate the "
                                                    "test split of --dataset from --processed first")
    src.add_argument("--baseline", choices=("static", "shifted-audio", "shuffled-audio"),
                     help="a baseline row built from the test clips of --processed: static (the first frame held "
                          "still), shuffled-audio (each clip with another clip's audio), shifted-audio (audio 5 frames "
                          "late); never marked")
    src.add_argument("--real", action="store_true",
                     help="the ceiling row: the real test clips of --processed scored as a method (per-video "
                          "metrics against themselves; FID/KID/FVD between two disjoint halves of the split); "
                          "never marked")
    p.add_argument("--processed", type=Path, help="preprocessing output (clips.parquet, videos/, ...) used with "
                                                 "--checkpoint, --baseline and --real")
    p.add_argument("--reference", type=Path, help="folder of reference / ground-truth videos (with --checkpoint: "
                                                 "default the processed test clips)")
    p.add_argument("--metrics", required=True, help="comma-separated metric names "
                                                   "(python -m dicetalk_bench.metrics list)")
    p.add_argument("--method", required=True, help="method name shown in the leaderboard")
    p.add_argument("--dataset", required=True, choices=DATASETS, help="dataset the videos belong to (leaderboard tab)")
    p.add_argument("--out", type=Path, required=True, help="output folder (results/, generated/, leaderboard/)")
    p.add_argument("--weights", type=key_value, action="append", default=[], metavar="KEY=PATH",
                   help="explicit weights file for a registry key, e.g. inception-fid=/path/pt_inception.pth")
    p.add_argument("--allow-unverified", action="store_true",
                   help="accept weights whose sha256 is not the official one (rows marked uncalibrated)")
    p.add_argument("--seed", type=int, default=0, help="seed of metric randomness and of generation")
    p.add_argument("--device", default="cpu", help="torch device")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--force-small-set", action="store_true",
                   help="compute FID/FVD/KID even on sets below their minimum size (recorded in the result)")
    p.add_argument("--cache-dir", type=Path, default=None, help="reference-feature cache (default: the metrics "
                                                               "package's cache folder)")
    p.add_argument("--no-cache", action="store_true", help="do not use the reference-feature cache")
    p.add_argument("--option", type=key_value, action="append", default=[], metavar="METRIC.NAME=VALUE",
                   help="metric option, e.g. fid.mode=pytorch-fid")
    p.add_argument("--keep-going", action="store_true", help="if a metric fails, still write the others (exit 1)")
    p.add_argument("--sample-steps", type=positive_int, default=25, help="Euler steps when generating (--checkpoint)")
    p.add_argument("--frame-rate", choices=("release", "native"), default=None,
                   help="sampling mode when generating (--checkpoint): release = 12.5 fps + RIFE (weights key "
                        "rife-hdv3, see --weights), native = 25 fps; default: from the checkpoint's frame_stride")
    p.add_argument("--workers", type=non_negative_int, default=0,
                   help="generation (--checkpoint) and FVD feature extraction: 0 = in this process; N = a local Dask "
                        "cluster of N one-thread workers (with --device cuda: one GPU each), each loading the model "
                        "once")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="generation (--checkpoint) and FVD feature extraction on the Dask cluster at this address, "
                        "e.g. tcp://host:8786 (GPU workers started with --resources GPU=1 when --device cuda)")
    p.add_argument("--window-batch", type=positive_int, default=None, metavar="N",
                   help="generation (--checkpoint): N 25-frame windows per network call (speed and memory only; "
                        "frames agree to float rounding); default: as many as fit in free CUDA memory, 4 on the CPU")
    p.add_argument("--max-clips", type=positive_int, default=None,
                   help="generate at most this many test clips (--checkpoint; for quick checks)")
    p.add_argument("--leaderboard", action="store_true",
                   help="afterwards build OUTDIR/leaderboard from every results file in OUTDIR/results")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def build_leaderboard_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dicetalk_bench.evaluate leaderboard",
        description="Build a static leaderboard (index.html, results.json, results.csv, results.tex) from results "
                    "files.", formatter_class=HelpFormatter)
    p.add_argument("--results", type=Path, required=True, help="folder of results files (searched recursively)")
    p.add_argument("--out", type=Path, required=True, help="leaderboard folder to write")
    p.add_argument("--recompute-intervals", action="store_true",
                   help="recompute every interval from the stored per-video values and features at --level, "
                        "--resamples, --set-resamples and --seed (default: show the interval stored with each "
                        "result when it was scored)")
    p.add_argument("--resamples", type=non_negative_int, default=1000,
                   help="bootstrap resamples for per-video metrics when recomputing (0: no interval)")
    p.add_argument("--set-resamples", type=non_negative_int, default=100,
                   help="bootstrap resamples for FID/KID/FVD over stored per-video features when recomputing (0: no "
                        "interval; each costs one recomputation of the metric)")
    p.add_argument("--level", type=_level, default=0.95, help="level of recomputed intervals")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed of recomputed intervals")
    p.add_argument("--max-failure-excess", type=_fraction, default=0.01,
                   help="best/second marks go only to rows whose failure rate is at most the lowest compared row's "
                        "+ this (0.01 = one percentage point); recorded on the page")
    p.add_argument("--published", type=Path, action="append", default=[], metavar="FILE",
                   help="published-rows YAML file (docs/evaluation.md) shown greyed under each table; the rows "
                        "dicetalk_bench ships are always included unless --no-published")
    p.add_argument("--no-published", action="store_true", help="leave out the shipped published rows")
    p.add_argument("--title", default="dicetalk_bench leaderboard")
    p.add_argument("--column-groups", type=_group_order, default=None, metavar="NAMES",
                   help="order of the metric column groups, comma-separated (image = PSNR/SSIM/LPIPS, distribution "
                        "= FID/FVD/KID, sync = Sync-C/D, emotion = emotion accuracy, identity = CSIM); groups left "
                        "out follow in that default order")
    p.add_argument("--sample-clips", type=non_negative_int, default=4,
                   help="test clips shown as stills and videos per row (the same for every row; 0: none)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the sample clips' choice (recorded)")
    p.add_argument("--banner", default="", help="a notice shown in bold under the page title (e.g. that the "
                                                "numbers come from random weights)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _group_order(text: str) -> tuple[str, ...]:
    from dicetalk_bench.reports.layout import parse_group_order

    try:
        return parse_group_order(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")


# ------------------------------------------------------------------------------------------------------- leaderboard
def _cmd_leaderboard(argv: list[str]) -> int:
    args = build_leaderboard_parser().parse_args(argv)
    _setup_logging(args.verbose)
    from dicetalk_bench.metrics.result import ResultFormatError
    from dicetalk_bench.reports.leaderboard import LeaderboardError
    from dicetalk_bench.reports.published import PublishedRowsError

    try:
        run_leaderboard(args.results, args.out, resamples=args.resamples, set_resamples=args.set_resamples,
                        level=args.level, seed=args.seed, title=args.title,
                        max_failure_excess=args.max_failure_excess,
                        recompute_intervals=args.recompute_intervals, published=args.published,
                        shipped_published=not args.no_published, column_groups=args.column_groups,
                        sample_clips=args.sample_clips, sample_seed=args.sample_seed, banner=args.banner)
    except (FileNotFoundError, ResultFormatError, LeaderboardError, PublishedRowsError) as exc:
        print(f"error: {exc}", file=sys.stderr)  # a set-up error, as every command reports one
        return 1
    return 0


# ------------------------------------------------------------------------------------------------------- scoring
def _config_from_args(args: argparse.Namespace, names: list[str]) -> EvalConfig:
    from dicetalk_bench.metrics.scoring import default_cache_dir

    return EvalConfig(
        method=args.method, dataset=args.dataset, metrics=tuple(names), out=str(args.out),
        videos=None if args.videos is None else str(args.videos),
        reference=None if args.reference is None else str(args.reference),
        checkpoint=None if args.checkpoint is None else str(args.checkpoint),
        processed=None if args.processed is None else str(args.processed), weights=dict(args.weights),
        allow_unverified=args.allow_unverified, seed=args.seed, device=args.device, batch_size=args.batch_size,
        force_small_set=args.force_small_set,
        cache_dir=None if args.no_cache else str(args.cache_dir or default_cache_dir()),
        options={k: scalar(v) for k, v in args.option}, keep_going=args.keep_going,
        sample_steps=args.sample_steps, max_clips=args.max_clips, frame_rate=args.frame_rate,
        workers=args.workers, scheduler=args.scheduler, window_batch=args.window_batch, baseline=args.baseline,
        real=args.real)


def _cmd_score(argv: list[str], *, summary: bool = True) -> int:
    parser = build_score_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    from dicetalk_bench.metrics.registry import MetricRegistryError, check_options, get_metric, parse_metric_list

    try:
        names = parse_metric_list(args.metrics)
    except MetricRegistryError as exc:
        parser.error(str(exc))
    if not args.method.strip():
        parser.error("--method must not be empty")
    source = "--checkpoint" if args.checkpoint is not None else (
        "--baseline" if args.baseline else ("--real" if args.real else None))
    if source is not None:
        if args.processed is None:
            parser.error(f"{source} needs --processed DIR (the preprocessing output holding the test split)")
        if not args.processed.is_dir():
            parser.error(f"--processed {args.processed}: not a folder")
    else:
        if args.processed is not None:
            parser.error("--processed is only used with --checkpoint, --baseline or --real")
        if not args.videos.is_dir():
            parser.error(f"--videos {args.videos}: not a folder")
        for n in names:
            if get_metric(n).needs_reference and args.reference is None:
                parser.error(f"metric {n!r} needs --reference DIR")
    if args.reference is not None and not args.reference.is_dir():
        parser.error(f"--reference {args.reference}: not a folder")
    try:
        check_options(names, {k: scalar(v) for k, v in args.option})
    except MetricRegistryError as exc:
        parser.error(str(exc))
    cfg = _config_from_args(args, names)
    full_argv = ["python", "-m", "dicetalk_bench.evaluate", *argv]
    written: list[Path] = []

    def score() -> int:
        path, exit_code = run_evaluation(cfg, full_argv)
        written.append(path)
        return exit_code

    code = run_cli(score, verbose=args.verbose)  # a set-up error: one line on stderr, exit 1, no results file
    if summary and written:
        print_summary(written[0])
    if args.leaderboard and written:
        lb = _cmd_leaderboard(["--results", str(args.out / "results"), "--out", str(args.out / "leaderboard"),
                               "--seed", str(args.seed)])
        code = code or lb
    return code


def main(argv: Sequence[str] | None = None, *, summary: bool = True) -> int:
    """The command line; ``summary=False`` leaves out the summary table printed after scoring."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "leaderboard":
        return _cmd_leaderboard(argv[1:])
    if argv and argv[0] == "score":
        argv = argv[1:]
    return _cmd_score(argv, summary=summary)


if __name__ == "__main__":
    raise SystemExit(main())
