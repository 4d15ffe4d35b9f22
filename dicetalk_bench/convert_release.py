"""Convert an official DICE-Talk release folder into one of our sampling checkpoints.

``python -m dicetalk_bench.convert_release RELEASE_DIR OUT [--svd DIR] [--whisper DIR] [--priors DIR]
[--allow-unverified]``

RELEASE_DIR holds ``unet.pth``, ``pose_guider.pth``, ``audio_linear.pth`` and ``emo_model.pth`` (and optionally the
priors in ``emo/``); the SVD-xt folder, whisper-tiny and the priors are found through the weights registry unless
given. OUT becomes a checkpoint folder (``model.safetensors`` with the four modules and the priors, ``state.json``
with the model size, ``frame_stride: 2``, the weights records and the release's provenance label) that ``sample``,
``evaluate --checkpoint`` and training's ``init_from: OUT`` read. OUT is written under a temporary name and renamed,
so it is either complete or absent.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dicetalk_bench.convert_release", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("release_dir", help="release folder (unet.pth, pose_guider.pth, audio_linear.pth, emo_model.pth)")
    p.add_argument("out", help="checkpoint folder to write (must not exist)")
    p.add_argument("--svd", help="SVD-xt diffusers folder (default: weights registry key svd-xt)")
    p.add_argument("--whisper", help="whisper-tiny folder or random:SEED (default: weights registry key whisper-tiny)")
    p.add_argument("--priors", help="folder of the eight <emotion>.npy priors, when RELEASE_DIR has no emo/ "
                                    "(default: weights registry key dicetalk-priors)")
    p.add_argument("--allow-unverified", action="store_true",
                   help="accept release files without a pinned sha256 (results are labelled 'hash not pinned')")
    p.add_argument("--verbose", "-v", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    from dicetalk_bench.model.release import ReleaseSources, convert_release
    from dicetalk_bench.weights import WeightsError

    sources = ReleaseSources(svd=args.svd, whisper=args.whisper, priors=args.priors,
                             allow_unverified=args.allow_unverified)
    try:
        out = convert_release(args.release_dir, args.out, sources)
    except (ValueError, FileNotFoundError, FileExistsError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}: sample with --checkpoint {out}, fine-tune with init_from: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
