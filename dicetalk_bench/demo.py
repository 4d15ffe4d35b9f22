"""The whole chain on the built-in demo data, from the MEAD-shaped demo tree to a leaderboard page.

    python -m dicetalk_bench.demo [--out demo_out] [--size readme] [-v]

Builds the MEAD-shaped demo tree, preprocesses it (random Whisper weights), trains the emotion embedder and a tiny
DICE-Talk (configs/embedder_tiny.yaml, configs/train_tiny.yaml), generates and scores the test split, scores the
ceiling and the three baseline rows with random extractor weights and writes the leaderboard; prints the page's
path and a summary table. A rerun reuses every finished stage. The library is :mod:`dicetalk_bench.demo_chain`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from dicetalk_bench.cli_args import HelpFormatter
from dicetalk_bench.cli_errors import run_cli

#: loggers whose warnings about the demo's random weights the demo replaces by one note each (shown with -v); the
#: preprocessing tasks' per-clip warnings stay quiet too (a failed clip is recorded in failures.parquet)
NOTED_LOGGERS = ("dicetalk_bench.weights", "dicetalk_bench.model.train_loop", "dicetalk_bench.preprocessing.preflight",
                 "dicetalk_bench.preprocessing.tasks")


def build_parser() -> argparse.ArgumentParser:
    from dicetalk_bench.demo_chain import PRESETS

    p = argparse.ArgumentParser(prog="python -m dicetalk_bench.demo", description=__doc__.split("\n\n")[0],
                                formatter_class=HelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (rerun to resume)")
    p.add_argument("--size", choices=sorted(PRESETS), default="readme",
                   help="readme: six speakers, 8 test clips per row (about 20 min on an idle 2-core machine); "
                        "smoke: three speakers, 4 test clips, a few training steps (the tests' size)")
    p.add_argument("-v", "--verbose", action="store_true", help="show every library's log output")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import contextlib

    from dicetalk_bench.quiet import python_stderr_only, quiet_libraries

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    quiet_libraries(args.verbose)
    if not args.verbose:  # the demo says these once itself (DEMO_NOTES); the stages would repeat them per load
        for name in NOTED_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)

    from dicetalk_bench.demo_chain import PRESETS, DemoStageFailed, run_demo, stages_table, summary_table

    def go() -> int:
        try:
            result = run_demo(args.out, PRESETS[args.size])
        except DemoStageFailed:
            return 1  # the stage's command printed its own error line
        print()
        print(stages_table(result))
        print()
        print(summary_table(result))
        print()
        print("random, uncalibrated extractor weights and a tiny model: these numbers show the pipeline, not quality")
        print(f"leaderboard: {result.index_html.resolve()}")
        return 0

    with contextlib.nullcontext() if args.verbose else python_stderr_only():
        return run_cli(go, verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
