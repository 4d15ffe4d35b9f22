"""Argument types shared by the command lines (standard library only, so ``--help`` stays light)."""

from __future__ import annotations

import argparse
from typing import Any


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


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v
