"""Preprocessing benchmarks (pytest-benchmark): per-clip cost against the unavoidable video work.

    pytest benchmarks/bench_preprocessing.py --benchmark-only

Clip: a synthetic full-size source like real MEAD (1920x1080, 30 fps, 48 kHz AAC audio, a real face of
~330 px from skimage's astronaut image, moving slowly), ``BENCH_SECONDS`` long (default 3 s).

- ``baseline``: decode + 25 fps resample + 512 crop (fixed box) + x264 encode with the pipeline's preset;
- ``clip_default``: the full per-clip preprocessing (detection every 5th frame, tracking, smoothing, crop,
  encode, faces.parquet) plus the clip's audio task (log-mel + random whisper-tiny, Parquet);
- ``clip_stride1``: the same with detection on every frame;
- ``workers_1`` / ``workers_2``: 4 clips through :func:`pipeline.run` on a LocalCluster (start-up included).

Each benchmark stores its ratio to the baseline (or to ``workers_1``) in ``extra_info``. Goals from issue #3:
clip_default / baseline <= 1.5; workers_1 / workers_2 >= 1.7.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
_TIMES: dict[str, float] = {}


def _face_frames(T: int, W: int = 1920, H: int = 1080, size: int = 420) -> np.ndarray:
    import cv2
    from skimage import data

    patch = cv2.resize(data.astronaut()[40:240, 130:330], (size, size), interpolation=cv2.INTER_AREA)
    frames = np.empty((T, H, W, 3), np.uint8)
    frames[:] = (70, 90, 110)
    for t in range(T):
        x, y = 700 + 2 * t, 300 + t // 2
        frames[t, y:y + size, x:x + size] = patch
    return frames


@pytest.fixture(scope="module")
def bench_env(tmp_path_factory: pytest.TempPathFactory):
    from dicetalk_bench import media
    from dicetalk_bench.preprocessing.whisper import ensure_random_whisper_tiny

    d = tmp_path_factory.mktemp("bench")
    os.environ["DICETALK_BENCH_CACHE"] = str(d / "cache")
    ensure_random_whisper_tiny(0)
    T = int(SECONDS * 30)
    t = np.arange(int(SECONDS * 48000)) / 48000
    audio = (0.3 * np.sin(2 * np.pi * 200 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    root = d / "mead"
    frames = _face_frames(T)
    for i in range(4):
        p = root / f"M0{10 + i}/video/front/happy/level_1/001.mp4"
        p.parent.mkdir(parents=True)
        media.write_video(p, frames, 30.0, audio=audio, audio_rate=48000, preset="veryfast")
    return d, root


def _ratio(benchmark, name: str, base: str) -> None:
    _TIMES[name] = benchmark.stats.stats.mean
    if base in _TIMES:
        benchmark.extra_info[f"ratio_vs_{base}"] = _TIMES[name] / _TIMES[base]


def test_baseline_decode_resample_crop_encode(benchmark, bench_env) -> None:
    from dicetalk_bench import media
    from dicetalk_bench.preprocessing import crop
    from dicetalk_bench.preprocessing.pipeline import PreprocessConfig

    d, root = bench_env
    cfg = PreprocessConfig()
    src = root / "M010/video/front/happy/level_1/001.mp4"
    m = crop.crop_matrix(np.array([910.0, 510.0]), 840.0, cfg.crop.size)

    def work():
        with media.VideoWriter(d / "baseline.mp4", cfg.fps, crf=cfg.crf, preset=cfg.preset) as w:
            for ch in media.iter_video(src, chunk_frames=cfg.chunk_frames, fps=cfg.fps):
                w.write(np.stack([crop.warp(f, m, cfg.crop.size) for f in ch.frames]))

    benchmark.pedantic(work, rounds=2, iterations=1, warmup_rounds=0)
    _ratio(benchmark, "baseline", "baseline")


def _one_clip(d: Path, root: Path, stride: int) -> None:
    from dicetalk_bench.preprocessing import pipeline
    from dicetalk_bench.preprocessing.discovery_mead import discover_mead

    cfg = pipeline.with_overrides(pipeline.PreprocessConfig(), faces=dict(stride=stride))
    clip = discover_mead(root).clips[0]
    out = d / f"out_stride{stride}"
    shutil.rmtree(out, ignore_errors=True)
    p = pipeline.plan([clip], out, cfg)
    for t in p.todo:
        rec = pipeline.run_task(t)
        assert rec["status"] == "ok", rec


@pytest.mark.parametrize("stride", [5, 1])
def test_clip_preprocessing(benchmark, bench_env, stride: int) -> None:
    d, root = bench_env
    _one_clip(d, root, stride)  # warm: detector, whisper and Parquet code loaded once per process
    benchmark.pedantic(_one_clip, args=(d, root, stride), rounds=2, iterations=1)
    _ratio(benchmark, f"clip_stride{stride}", "baseline")


@pytest.mark.parametrize("workers", [1, 2])
def test_workers(benchmark, bench_env, workers: int) -> None:
    from dicetalk_bench.preprocessing import pipeline
    from dicetalk_bench.preprocessing.discovery_mead import discover_mead

    d, root = bench_env
    clips = discover_mead(root).clips
    out = d / f"out_workers{workers}"

    def work():
        shutil.rmtree(out, ignore_errors=True)
        s = pipeline.run(clips, root, out, pipeline.PreprocessConfig(), workers=workers, progress=False)
        assert s.n_failed == 0

    benchmark.pedantic(work, rounds=1, iterations=1)
    _ratio(benchmark, f"workers_{workers}", "workers_1")
    if workers == 2 and "workers_1" in _TIMES:
        benchmark.extra_info["speedup_1_to_2"] = _TIMES["workers_1"] / _TIMES["workers_2"]
