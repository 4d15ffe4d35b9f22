"""Demo-data benchmark: what does rendering a take cost relative to encoding it?

Baseline: H.264 + AAC encode of the take's frames with ``media.write_video`` (the demo's settings).
Measured: rendering the same frames (``ClipRenderer.render``: emotion warp, jaw opening, compositing, noise).
Both at the test size (160x120, 60 frames) and at 1920x1080 (10 frames). The ratio (render / encode, same
run) goes to ``extra_info['ratio_vs_encode']`` and the log.

Run: ``python -m pytest benchmarks/bench_demo_data.py --benchmark-only``
(needs the cached speech asset: ``python -m dicetalk_bench.demo_data fetch-assets``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from dicetalk_bench import media
from dicetalk_bench.demo_data import identities, sources, synth

logger = logging.getLogger(__name__)
_MEANS: dict[str, float] = {}
_SIZES = {"test": ((160, 120), 2.0, 16000), "1080p": ((1920, 1080), 1.0 / 3.0, 48000)}


@pytest.fixture(scope="module")
def ctx() -> synth.DemoContext:
    imgs = sources.load_face_images(sources.astronaut_asset(), sources.carphone_asset())
    return synth.DemoContext(seed=0, tts="none", face_images=imgs,
                             speech16k=sources.load_speech(sources.speech_asset()))


def _take(ctx: synth.DemoContext, size: str) -> synth.Take:
    wh, seconds, rate = _SIZES[size]
    return synth.make_take(ctx, identities.MEAD_IDENTITIES["W009"], "happy", 3, ("bench",), ("bench", size),
                           duration_s=seconds, fps=30.0, size_wh=wh, audio_rate=rate)


def _render(take: synth.Take, size: str) -> np.ndarray:
    frames, _ = take.renderer.render(take.openness, 30.0, _SIZES[size][0], take.drift, np.random.default_rng(0))
    return frames


@pytest.mark.parametrize("size", list(_SIZES))
def test_encode_baseline(benchmark, ctx, size: str, tmp_path: Path) -> None:
    take = _take(ctx, size)
    frames = _render(take, size)
    benchmark(media.write_video, tmp_path / "x.mp4", frames, 30.0, audio=take.audio, audio_rate=take.audio_rate,
              crf=23, preset="veryfast")
    _MEANS[f"encode-{size}"] = benchmark.stats.stats.mean


@pytest.mark.parametrize("size", list(_SIZES))
def test_render_take(benchmark, ctx, size: str) -> None:
    take = _take(ctx, size)
    benchmark(_render, take, size)
    mean = benchmark.stats.stats.mean
    base = _MEANS.get(f"encode-{size}")
    if base:
        benchmark.extra_info["ratio_vs_encode"] = mean / base
        logger.info("demo render / encode at %s: %.2f", size, mean / base)
