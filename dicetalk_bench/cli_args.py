"""Argument types shared by the command lines (standard library only, so ``--help`` stays light)."""

from __future__ import annotations

import argparse
from typing import Any, Callable, Sequence, TypeVar

T = TypeVar("T")


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> (key, value), both stripped; argparse error when either side is empty."""
    k, sep, v = text.partition("=")
    if not sep or not k.strip() or not v.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return k.strip(), v.strip()


def scalar(text: str) -> Any:
    """An option value: int if it parses as one, else float, else the text itself."""
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def int_at_least(minimum: int, what: str) -> Callable[[str], int]:
    """An argparse type for integers >= ``minimum``; ``what`` names them in the error ("a positive integer")."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {v}")
        return v

    return parse


positive_int = int_at_least(1, "a positive integer")
non_negative_int = int_at_least(0, "an integer >= 0")


def setup_logging(verbose: bool) -> None:
    """INFO (DEBUG with ``verbose``) logging with time, level and logger name, as every training CLI logs."""
    import logging

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def load_cli_config(cls: type[T], path: str | None, overrides: Sequence[str]) -> T | None:
    """``config.load_config``; on a bad file or override prints ``error: ...`` to stderr and returns None
    (the caller exits with status 2)."""
    import sys

    from dicetalk_bench.config import ConfigError, load_config

    try:
        return load_config(cls, path, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` with each option's default where it has one worth showing: none on required options or for a
    default of None / False / an empty list, and the description's line breaks kept."""

    def _get_help_string(self, action: argparse.Action) -> str:
        d = action.default
        if action.required or d is None or d is False or d == [] or d is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action) or ""
