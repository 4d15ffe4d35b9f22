"""Media benchmark: what does preprocessing cost on top of plain decoding?

Baseline: stream-decode a generated 1920x1080 30 fps 2 s H.264 clip (``media.iter_video``).
Measured: decode + 25 fps resampling + centre crop + resize to 512x512 + H.264 encode (``VideoWriter``,
default crf 18 / preset medium), the per-clip work of MEAD/HDTF preprocessing.
The ratio (measured / baseline, same run) is stored in ``extra_info['ratio_vs_decode']`` and logged.

Run: ``python -m pytest benchmarks/bench_media.py --benchmark-only``
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dicetalk_bench import media

logger = logging.getLogger(__name__)
_MEANS: dict[str, float] = {}


@pytest.fixture(scope="module")
def clip_1080p(tmp_path_factory: pytest.TempPathFactory) -> Path:
    h, w, n = 1080, 1920, 60
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx % 256, yy % 256, (xx + yy) % 256], axis=-1).astype(np.uint8)
    path = tmp_path_factory.mktemp("bench_media") / "clip_1080p.mp4"
    with media.VideoWriter(path, 30, crf=23, preset="ultrafast") as writer:
        for t in range(n):
            writer.write(np.roll(base, 8 * t, axis=1))  # moving content so frames are not trivially skipped
    return path


def _decode(path: Path) -> int:
    return sum(chunk.frames.shape[0] for chunk in media.iter_video(path, chunk_frames=16))


def _preprocess(path: Path, out: Path, size: int = 512) -> int:
    n = 0
    with media.VideoWriter(out, 25) as writer:
        for chunk in media.iter_video(path, chunk_frames=16, fps=25):
            h, w = chunk.frames.shape[1:3]
            side = min(h, w)
            top, left = (h - side) // 2, (w - side) // 2
            crop = torch.from_numpy(chunk.frames[:, top : top + side, left : left + side]).permute(0, 3, 1, 2)
            small = F.interpolate(crop.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            writer.write(small.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy())
            n += chunk.frames.shape[0]
    return n


def test_decode_1080p(benchmark, clip_1080p: Path) -> None:
    n = benchmark.pedantic(_decode, args=(clip_1080p,), rounds=3, iterations=1)
    assert n == 60
    _MEANS["decode"] = benchmark.stats.stats.mean


def test_decode_resample_crop_encode_512(benchmark, clip_1080p: Path, tmp_path: Path) -> None:
    n = benchmark.pedantic(_preprocess, args=(clip_1080p, tmp_path / "out.mp4"), rounds=3, iterations=1)
    assert n == 50
    mean = benchmark.stats.stats.mean
    if "decode" in _MEANS:
        ratio = mean / _MEANS["decode"]
        benchmark.extra_info["ratio_vs_decode"] = ratio
        logger.warning("decode+resample+crop/resize+encode 512 = %.2fx plain 1080p decode (%.3f s vs %.3f s)",
                       ratio, mean, _MEANS["decode"])
