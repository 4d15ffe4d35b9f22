"""CLI: build the demo data, or fetch its speech asset.

    python -m dicetalk_bench.demo_data --out DIR [--seed S] [--size {test,full}] [--tts {none,espeak}]
                                       [--datasets mead,hdtf]
    python -m dicetalk_bench.demo_data fetch-assets [--dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

_DATASETS = ("mead", "hdtf")


def _datasets(text: str) -> tuple[str, ...]:
    items = tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in items if t not in _DATASETS]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated subset of {','.join(_DATASETS)}")
    return items


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m dicetalk_bench.demo_data",
        description="Build MEAD- and HDTF-shaped demo data (raw layouts) from real packaged media. "
                    "Run `python -m dicetalk_bench.demo_data fetch-assets [--dir DIR]` once first to cache "
                    "the CMU ARCTIC speech sample (pip download of the pysptk 1.0.1 sdist, hash-checked).",
        epilog="See docs/demo_data.md for what is built, the sources and their licences.")
    p.add_argument("--out", required=True, help="output folder (gets mead/, hdtf/, demo_manifest.json)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same frames/audio")
    p.add_argument("--size", choices=("test", "full"), default="test",
                   help="test: 160x120 MEAD / 256x144 HDTF, 2 s clips; full: 1920x1080 30 fps, 48 kHz AAC")
    p.add_argument("--tts", choices=("none", "espeak"), default="none",
                   help="speech source: none = CMU ARCTIC pieces (default); espeak = espeak-ng sentences")
    p.add_argument("--datasets", type=_datasets, default=_DATASETS, help="comma-separated: mead,hdtf (default both)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def build_fetch_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dicetalk_bench.demo_data fetch-assets",
                                description="Download (pip download, no build) and hash-check the CMU ARCTIC "
                                            "speech asset into the assets cache.")
    p.add_argument("--dir", default=None, help="assets folder (default $DICETALK_BENCH_ASSETS_DIR or "
                                               "~/.cache/dicetalk_bench/assets)")
    p.add_argument("--force", action="store_true", help="download again even when the cached copy is valid")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fetch-assets"]:
        args = build_fetch_parser().parse_args(argv[1:])
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        from .sources import AssetError, fetch_speech_asset

        try:
            path = fetch_speech_asset(args.dir, force=args.force)
        except AssetError as exc:
            logging.getLogger("dicetalk_bench.demo_data").error("%s", exc)
            return 1
        print(path)
        return 0
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    from .build import build_demo  # heavy imports (cv2, av, scipy) only after parsing
    from .sources import AssetError
    from .speech import TTSError

    try:
        out = build_demo(args.out, size=args.size, seed=args.seed, tts=args.tts, datasets=args.datasets)
    except (AssetError, TTSError, FileExistsError, ValueError) as exc:
        logging.getLogger("dicetalk_bench.demo_data").error("%s", exc)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
