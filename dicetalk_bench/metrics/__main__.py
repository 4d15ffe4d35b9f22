"""Command line for the metrics: ``python -m dicetalk_bench.metrics {score,list} ...``.

    python -m dicetalk_bench.metrics score --videos GEN_DIR --reference REAL_DIR --metrics fid,kid,fvd \
        --out results.json [--weights inception-fid=PATH] [--allow-unverified] [--force-small-set] \
        [--option fid.mode=pytorch-fid] [--option fvd.clips_per_video=4]
    python -m dicetalk_bench.metrics list

Arguments are parsed before anything heavy is imported; metrics are dispatched through
:mod:`dicetalk_bench.metrics.registry`, so every registered metric is available here. Before any video is decoded,
each ``--option`` is checked against the options the requested metrics read (unknown names and values refused) and
every weights file they need is located and hash-checked (:mod:`.preflight`; the scoring itself is
:func:`dicetalk_bench.metrics.scoring.run_score`); a set-up error ends the command with
``error: ...`` on stderr, exit status 1 and no results file. Other subcommands
(e.g. ``train-emotion``) can be added to ``EXTRA_COMMANDS``: name -> ``"module:function"`` taking ``argv`` (list of
str) and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path

from dicetalk_bench.cli_args import key_value, non_negative_int, scalar
from dicetalk_bench.cli_errors import run_cli
from dicetalk_bench.metrics.scoring import default_cache_dir, run_score, score_metrics  # noqa: F401 (old import path)

# name -> "module:function(argv: list[str]) -> int"; help text
EXTRA_COMMANDS: dict[str, tuple[str, str]] = {
    "train-emotion": ("dicetalk_bench.metrics.emotion_train:main", "train our own MEAD emotion classifier (Emo-Acc)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dicetalk_bench.metrics",
                                     description="Score folders of talking-head videos.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("score", help="compute metrics on a folder of videos and write a results JSON")
    s.add_argument("--videos", type=Path, required=True, help="folder of generated videos (clip id = file stem)")
    s.add_argument("--reference", type=Path, help="folder of reference (real / ground-truth) videos")
    s.add_argument("--metrics", required=True, help="comma-separated metric names (see `list`)")
    s.add_argument("--out", type=Path, required=True, help="results JSON to write (features go beside it)")
    s.add_argument("--weights", type=key_value, action="append", default=[], metavar="KEY=PATH",
                   help="explicit weights file for a registry key, e.g. inception-fid=/path/pt_inception.pth")
    s.add_argument("--allow-unverified", action="store_true",
                   help="accept weights whose sha256 is not the official one (results marked uncalibrated)")
    s.add_argument("--device", default="cpu", help="torch device (default cpu)")
    s.add_argument("--seed", type=int, default=0, help="seed for clip offsets and KID subsets")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--force-small-set", action="store_true",
                   help="compute FID/FVD/KID even on sets below their minimum size (recorded in the result)")
    s.add_argument("--cache-dir", type=Path, default=None,
                   help=f"cache of reference-set features (default {default_cache_dir()})")
    s.add_argument("--no-cache", action="store_true", help="do not read or write the reference-feature cache")
    s.add_argument("--option", type=key_value, action="append", default=[], metavar="METRIC.NAME=VALUE",
                   help="metric option, e.g. fid.mode=pytorch-fid, fid.crop=center, fvd.backend=i3d-torchscript")
    s.add_argument("--keep-going", action="store_true",
                   help="if a metric fails, log it and still write the others (exit code 1)")
    s.add_argument("--workers", type=non_negative_int, default=0,
                   help="FVD feature extraction: 0 = in this process; N = a local Dask cluster of N one-thread "
                        "workers, one task per video (the same values)")
    s.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="FVD feature extraction on the Dask cluster at this address, e.g. tcp://host:8786 "
                        "(every worker must see the videos and the weights at the same paths)")
    sub.add_parser("list", help="list the registered metrics")
    for name, (_, help_text) in EXTRA_COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _cmd_list() -> int:
    from dicetalk_bench.metrics.registry import METRICS

    for name in METRICS:
        spec = METRICS[name]
        direction = "higher is better" if spec.higher_is_better else "lower is better"
        ref = ", needs --reference" if spec.needs_reference else ""
        sys.stdout.write(f"{name:10s} {direction}{ref}: {spec.description}\n")
    return 0


def _cmd_score(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from dicetalk_bench.metrics.registry import (MetricRegistryError, ScoreRequest, check_options, get_metric,
                                                 parse_metric_list)

    try:
        names = parse_metric_list(args.metrics)
    except MetricRegistryError as exc:
        parser.error(str(exc))
    if not args.videos.is_dir():
        parser.error(f"--videos {args.videos}: not a folder")
    if args.reference is not None and not args.reference.is_dir():
        parser.error(f"--reference {args.reference}: not a folder")
    for n in names:
        if get_metric(n).needs_reference and args.reference is None:
            parser.error(f"metric {n!r} needs --reference DIR")
    options = {k: scalar(v) for k, v in args.option}
    try:
        check_options(names, options)
    except MetricRegistryError as exc:
        parser.error(str(exc))
    cache_dir = None if args.no_cache else (args.cache_dir or default_cache_dir())
    request = ScoreRequest(videos=args.videos, reference=args.reference, weights=dict(args.weights),
                           allow_unverified=args.allow_unverified, device=args.device, seed=args.seed,
                           batch_size=args.batch_size, force_small_set=args.force_small_set, cache_dir=cache_dir,
                           options=options, workers=args.workers, scheduler=args.scheduler)
    return run_score(names, request, args.out, keep_going=args.keep_going)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in EXTRA_COMMANDS:
        module_name, func_name = EXTRA_COMMANDS[argv[0]][0].split(":")
        return int(getattr(importlib.import_module(module_name), func_name)(argv[1:]) or 0)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command == "list":
        return _cmd_list()
    return run_cli(lambda: _cmd_score(args, parser), verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
