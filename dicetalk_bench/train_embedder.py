"""Train the emotion embedder (V-mode stage): ``python -m dicetalk_bench.train_embedder --config CONFIG.yaml
[--resume] [key=value ...]``.

The YAML holds :class:`dicetalk_bench.model.embedder_train.EmbedderTrainConfig` fields (``data_root``: a
preprocessing output with emotion labels and speakers, e.g. MEAD; ``out_dir``; ``steps`` ...; nested
``embedder:`` settings). At the end ``<out_dir>/priors/<emotion>.npy`` holds the per-emotion priors in the
release format; train the generator on this embedder with ``python -m dicetalk_bench.train embedder_dir=OUT_DIR``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from dicetalk_bench.cli_args import load_cli_config, setup_logging
from dicetalk_bench.cli_errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dicetalk_bench.train_embedder", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML with EmbedderTrainConfig fields (defaults otherwise)")
    p.add_argument("--resume", action="store_true", help="continue from <out_dir>/checkpoints/latest")
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. steps=500 out_dir=runs/emb")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_cli(lambda: _run(args), verbose=args.verbose)


def _run(args: argparse.Namespace) -> int:
    from dicetalk_bench.model.embedder_train import EmbedderTrainConfig, train_embedder
    from dicetalk_bench.model.train_checks import check_embedder_inputs

    cfg = load_cli_config(EmbedderTrainConfig, args.config, args.overrides)
    if cfg is None:
        return 2
    check_embedder_inputs(cfg)  # before any model or output folder
    run = train_embedder(cfg, resume_run=args.resume)
    print(f"trained the emotion embedder to step {run.step}; priors in {cfg.out_dir}/priors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
