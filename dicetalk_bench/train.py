"""Train DICE-Talk: ``python -m dicetalk_bench.train --config CONFIG.yaml [--resume] [key=value ...]``.

The YAML holds the fields of :class:`dicetalk_bench.model.train_loop.TrainConfig` (``model: tiny | paper``,
``data_root``, ``embedder_dir`` (the train_embedder output: per-clip emotion embeddings, the default) or
``emotion_source: class-mean`` with ``priors_dir``, ``svd``, ``init_from``, ``out_dir``, ``steps`` ...);
``key=value`` arguments override it. ``init_from: DIR`` starts a new run from a checkpoint folder (e.g. the
output of ``python -m dicetalk_bench.convert_release``).
Checkpoints go to ``<out_dir>/checkpoints/step_<N>/``; ``--resume`` continues from the latest one exactly.
The inputs (preprocessing output, priors, SVD folder, release files) are checked before anything is built or
written; a set-up error prints ``error: ...`` and exits 1 without a traceback (``-v`` shows it).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from dicetalk_bench.cli_args import load_cli_config, setup_logging
from dicetalk_bench.cli_errors import run_cli


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dicetalk_bench.train", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML with TrainConfig fields (defaults: the tiny CPU configuration)")
    p.add_argument("--resume", action="store_true", help="continue from <out_dir>/checkpoints/latest")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--estimate-memory", action="store_true",
                   help="print the estimated peak memory per process against the device's free memory and exit "
                        "(0: fits, 1: does not)")
    p.add_argument("--verbose", "-v", action="store_true")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. steps=200 out_dir=runs/x")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_cli(lambda: _run(args), verbose=args.verbose)


def _run(args: argparse.Namespace) -> int:
    from dicetalk_bench.model.train_checks import check_train_inputs
    from dicetalk_bench.model.train_loop import TrainConfig, train

    cfg = load_cli_config(TrainConfig, args.config, args.overrides)
    if cfg is None:
        return 2
    check_train_inputs(cfg)  # before any model, memory estimate or output folder

    def report(run, terms):
        bar.n = run.step
        bar.set_postfix(loss=f"{terms['loss']:.4f}", refresh=False)
        bar.refresh()
        if run.step % 10 == 0 or run.step == cfg.steps:
            logging.getLogger("dicetalk_bench.train").info(
                "step %d loss %.4f (diffusion %.4f, vq %.4f, cls %.4f)", run.step, terms["loss"],
                terms["diffusion"], terms["vq"], terms["cls"])

    if args.estimate_memory:
        from dicetalk_bench.model.train_loop import check_memory

        print(check_memory(cfg, args.device).summary())  # MemoryBudgetError: a set-up error, exit 1
        return 0
    from tqdm.auto import tqdm

    bar = tqdm(total=cfg.steps, desc="generator", unit="step", disable=None)
    try:
        run = train(cfg, resume_run=args.resume, device=args.device, on_step=report)
    finally:
        bar.close()
    print(f"trained to step {run.step}; checkpoints in {cfg.out_dir}/checkpoints")
    return 0


if __name__ == "__main__":
    sys.exit(main())
