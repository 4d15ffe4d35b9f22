"""Every ``--flag`` that README.md and docs/*.md show after ``python -m dicetalk_bench.X [SUBCOMMAND]`` exists in that
command's argparse parser, so the documentation cannot name an option the code does not have."""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

# (module, subcommand or None) -> "module:function" returning the parser that reads those arguments. Commands that
# dispatch on their first argument themselves (evaluate, demo_data, metrics train-emotion) are listed per subcommand.
PARSERS: dict[tuple[str, str | None], str] = {
    ("preprocess", None): "dicetalk_bench.preprocess:build_parser",
    ("train", None): "dicetalk_bench.train:build_parser",
    ("train_embedder", None): "dicetalk_bench.train_embedder:build_parser",
    ("sample", None): "dicetalk_bench.sample:build_parser",
    ("convert_release", None): "dicetalk_bench.convert_release:build_parser",
    ("evaluate", None): "dicetalk_bench.evaluate:build_score_parser",
    ("evaluate", "score"): "dicetalk_bench.evaluate:build_score_parser",
    ("evaluate", "leaderboard"): "dicetalk_bench.evaluate:build_leaderboard_parser",
    ("weights", None): "dicetalk_bench.weights:build_parser",
    ("demo_data", None): "dicetalk_bench.demo_data.__main__:build_parser",
    ("demo_data", "fetch-assets"): "dicetalk_bench.demo_data.__main__:build_fetch_parser",
    ("metrics", None): "dicetalk_bench.metrics.__main__:build_parser",
    ("metrics", "train-emotion"): "dicetalk_bench.metrics.emotion_train:build_parser",
    ("demo", None): "dicetalk_bench.demo:build_parser",
}

_COMMAND = re.compile(r"python -m dicetalk_bench\.([a-z_]+)((?:[^\n`#;&]|&(?!&))*)")
_FLAG = re.compile(r"^\[?(--[a-z][a-z0-9-]*)")


def _parser(module: str, sub: str | None) -> argparse.ArgumentParser:
    mod, func = PARSERS[(module, sub)].split(":")
    return getattr(importlib.import_module(mod), func)()


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps subcommands in a _SubParsersAction
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def _joined_text(path: Path) -> str:
    """The file with command continuations joined: a trailing backslash, or (in code blocks) indented lines that
    continue a ``python -m`` synopsis."""
    out: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if out and (out[-1].endswith("\\") or ("python -m dicetalk_bench." in out[-1] and line.startswith("    ")
                                                and not line.lstrip().startswith("python"))):
            out[-1] = out[-1].rstrip("\\") + " " + line.strip()
        else:
            out.append(line)
    return "\n".join(out)


def documented_usages(paths: list[Path] = DOCS) -> list[tuple[str, str, str | None, str]]:
    """(file, module, subcommand, flag) for every ``--flag`` after a ``python -m dicetalk_bench.X`` in ``paths``."""
    found = []
    for path in paths:
        for m in _COMMAND.finditer(_joined_text(path)):
            module, tokens = m.group(1), m.group(2).split()
            sub = tokens[0] if tokens and (module, tokens[0]) in PARSERS else None
            if sub is None and tokens and module in ("weights", "metrics") and not tokens[0].startswith("-"):
                sub = tokens[0]  # a subparser of the module's own parser
            for tok in tokens:
                flag = _FLAG.match(tok)
                if flag:
                    found.append((path.name, module, sub, flag.group(1)))
    return found


def test_the_scan_finds_the_documented_commands() -> None:
    usages = documented_usages()
    modules = {u[1] for u in usages}
    assert {"preprocess", "metrics", "evaluate", "weights", "demo_data", "demo"} <= modules, modules
    assert ("README.md", "demo", None, "--size") in usages
    assert len(usages) > 50


def test_scan_reads_continuations_and_subcommands(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("```\npython -m dicetalk_bench.preprocess --dataset mead \\\n    --root R [--whisper DIR]\n"
                   "python -m dicetalk_bench.weights fetch syncnet --wheel W && python -m dicetalk_bench.metrics "
                   "score --videos V  # --not-a-flag\n```\nInline `python -m dicetalk_bench.demo_data fetch-assets "
                   "--dir D`.\n")
    assert documented_usages([doc]) == [
        ("x.md", "preprocess", None, "--dataset"), ("x.md", "preprocess", None, "--root"),
        ("x.md", "preprocess", None, "--whisper"), ("x.md", "weights", "fetch", "--wheel"),
        ("x.md", "metrics", "score", "--videos"), ("x.md", "demo_data", "fetch-assets", "--dir")]


def unknown_flags(paths: list[Path]) -> list[str]:
    """The documented ``python -m dicetalk_bench.X [SUB] --flag`` usages in ``paths`` whose parser lacks the flag."""
    unknown = []
    for _, module, sub, flag in documented_usages(paths):
        if (module, None) not in PARSERS:
            unknown.append(f"python -m dicetalk_bench.{module}: no such command")
            continue
        if (module, sub) in PARSERS:
            parser = _parser(module, sub)
        else:
            root = _parser(module, None)
            parser = _subparsers(root).get(sub, root) if sub else root
        if flag not in _options(parser):
            unknown.append(f"python -m dicetalk_bench.{module}{' ' + sub if sub else ''} {flag}")
    return sorted(set(unknown))


def test_an_option_that_does_not_exist_is_reported(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("`python -m dicetalk_bench.metrics score --videos V --syncnet-weights W`\n"
                   "`python -m dicetalk_bench.weights fetch syncnet --pin` `python -m dicetalk_bench.nope --x`\n"
                   "`python -m dicetalk_bench.evaluate leaderboard --results R --videos V`\n")
    assert unknown_flags([doc]) == ["python -m dicetalk_bench.evaluate leaderboard --videos",
                                    "python -m dicetalk_bench.metrics score --syncnet-weights",
                                    "python -m dicetalk_bench.nope: no such command",
                                    "python -m dicetalk_bench.weights fetch --pin"]


@pytest.mark.parametrize("doc", [p.name for p in DOCS])
def test_every_documented_flag_parses(doc: str) -> None:
    unknown = unknown_flags([p for p in DOCS if p.name == doc])
    assert not unknown, f"{doc} names options that do not exist: {unknown}"
