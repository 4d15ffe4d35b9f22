"""Built-in demo data: MEAD- and HDTF-shaped trees made from real packaged media (see docs/demo_data.md).

``build_demo(out_dir, size="test"|"full", seed=0, tts="none"|"espeak", datasets=("mead", "hdtf"))``;
CLI: ``python -m dicetalk_bench.demo_data --out DIR`` and ``python -m dicetalk_bench.demo_data fetch-assets``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["build_demo", "fetch_speech_asset", "MANIFEST_NAME"]

if TYPE_CHECKING:  # pragma: no cover
    from .build import MANIFEST_NAME, build_demo
    from .sources import fetch_speech_asset


def __getattr__(name: str) -> Any:
    # lazy, so `python -m dicetalk_bench.demo_data --help` does not import cv2 / av
    if name in ("build_demo", "MANIFEST_NAME"):
        from . import build

        return getattr(build, name)
    if name == "fetch_speech_asset":
        from .sources import fetch_speech_asset

        return fetch_speech_asset
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
