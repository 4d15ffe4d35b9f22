"""``--help`` of every command: defaults are shown only where they say something (never "(default: None)", never on
a required option), and ``evaluate --help`` names its subcommands."""

from __future__ import annotations

import argparse
import re

import pytest

from test_docs_flags import PARSERS, _parser, _subparsers


def _all_parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    out = []
    for (module, sub) in PARSERS:
        parser = _parser(module, sub)
        out.append((f"{module} {sub or ''}".strip(), parser))
        out += [(f"{module} {name}", p) for name, p in _subparsers(parser).items()]
    return out


@pytest.mark.parametrize("name,parser", _all_parsers(), ids=lambda v: v if isinstance(v, str) else "")
def test_help_shows_no_empty_defaults(name: str, parser: argparse.ArgumentParser) -> None:
    text = re.sub(r"\s+", " ", parser.format_help())
    assert "(default: None)" not in text and "(default: False)" not in text and "(default: [])" not in text, name
    formatter = parser._get_formatter()
    for action in parser._actions:
        if action.required and action.help:
            assert "%(default)" not in formatter._get_help_string(action), (name, action.option_strings)


def test_help_keeps_real_defaults() -> None:
    from dicetalk_bench.evaluate import build_leaderboard_parser, build_score_parser

    assert "(default: 25)" in re.sub(r"\s+", " ", build_score_parser().format_help())  # --sample-steps
    assert "(default: 0.95)" in re.sub(r"\s+", " ", build_leaderboard_parser().format_help())  # --level


def test_evaluate_help_names_its_subcommands_before_the_options() -> None:
    from dicetalk_bench.evaluate import build_score_parser

    text = build_score_parser().format_help()
    head = text.split("options:")[0]
    assert "subcommands:" in head and "score" in head and "leaderboard" in head
    assert "python -m dicetalk_bench.evaluate leaderboard --results" in head
    assert text.index("subcommands:") < text.index("--videos VIDEOS")  # in the description, not an epilog
