"""Preprocessing benchmarks (pytest-benchmark): per-clip cost against the unavoidable video work.

    pytest benchmarks/bench_preprocessing.py --benchmark-only

Clip: a synthetic full-size source like real MEAD (1920x1080, 30 fps, 48 kHz AAC audio, a real face of
~330 px from skimage's astronaut image, moving slowly), ``BENCH_SECONDS`` long (default 3 s).

- ``baseline``: decode + 25 fps resample + 512 crop (fixed box) + x264 encode with the pipeline's preset;
- ``clip_default``: the full per-clip preprocessing (detection every 5th frame, tracking, smoothing, crop,
  encode, faces.parquet) plus the clip's audio task (log-mel + random whisper-tiny, Parquet);
- ``clip_stride1``: the same with detection on every frame;
  ``extra_info`` splits it into the video task and the audio task and gives the ratio with the clip's own
  audio task and with the audio task amortised over MEAD's 7 views of an utterance (one audio task each);
- ``clip_vs_baseline_paired``: baseline and clip alternated ``BENCH_PAIRS`` (default 5) times, ratios of
  the medians (the figure to report on a shared machine: load drift hits both alike);
- ``workers[1|2-warm|cold]``: ``BENCH_WORKER_CLIPS`` (default 10) clips through :func:`pipeline.run` on a
  LocalCluster with one thread per worker. ``warm``: the workers are started, have imported torch /
  transformers / mediapipe (``client.run``) and have processed one throw-away clip each before the clock
  starts (steady state); ``cold``: start-up included, as a fresh command line run sees it.

Each benchmark stores its ratio to the baseline (or the 1-worker speedup) in ``extra_info``. Goals from
issue #3: clip / baseline <= 1.5; 1 -> 2 worker speedup >= 1.7.

    BENCH_SECONDS=2 pytest benchmarks/bench_preprocessing.py --benchmark-only --benchmark-json=out.json
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


def _one_clip(d: Path, root: Path, stride: int) -> dict[str, float]:
    """Run one clip's tasks in process; returns seconds per task kind ("video", "audio")."""
    import time

    from dicetalk_bench.preprocessing import pipeline
    from dicetalk_bench.preprocessing.discovery_mead import discover_mead

    cfg = pipeline.with_overrides(pipeline.PreprocessConfig(), faces=dict(stride=stride))
    clip = discover_mead(root).clips[0]
    out = d / f"out_stride{stride}"
    shutil.rmtree(out, ignore_errors=True)
    p = pipeline.plan([clip], out, cfg)
    times = {"video": 0.0, "audio": 0.0}
    for t in p.todo:
        t0 = time.perf_counter()
        rec = pipeline.run_task(t)
        times["video" if isinstance(t, pipeline.VideoTask) else "audio"] += time.perf_counter() - t0
        assert rec["status"] == "ok", rec
    return times


@pytest.mark.parametrize("stride", [5, 1])
def test_clip_preprocessing(benchmark, bench_env, stride: int) -> None:
    d, root = bench_env
    _one_clip(d, root, stride)  # warm: detector, whisper and Parquet code loaded once per process
    parts: list[dict[str, float]] = []
    benchmark.pedantic(lambda: parts.append(_one_clip(d, root, stride)), rounds=2, iterations=1)
    _ratio(benchmark, f"clip_stride{stride}", "baseline")
    video = float(np.mean([p["video"] for p in parts]))
    audio = float(np.mean([p["audio"] for p in parts]))
    benchmark.extra_info.update(video_task_s=video, audio_task_s=audio)
    if "baseline" in _TIMES:
        # MEAD: one audio task serves the 7 camera views of an utterance
        benchmark.extra_info["ratio_own_audio"] = (video + audio) / _TIMES["baseline"]
        benchmark.extra_info["ratio_audio_over_7_views"] = (video + audio / 7) / _TIMES["baseline"]
        benchmark.extra_info["ratio_video_task_only"] = video / _TIMES["baseline"]


PAIRS = int(os.environ.get("BENCH_PAIRS", "5"))


def test_clip_vs_baseline_paired(benchmark, bench_env) -> None:
    """Baseline and whole clip alternated ``PAIRS`` times: ratios of medians, robust to a shared machine's
    load drifting between two separate benchmarks."""
    import time

    from dicetalk_bench import media
    from dicetalk_bench.preprocessing import crop
    from dicetalk_bench.preprocessing.pipeline import PreprocessConfig

    d, root = bench_env
    cfg = PreprocessConfig()
    src = root / "M010/video/front/happy/level_1/001.mp4"
    m = crop.crop_matrix(np.array([910.0, 510.0]), 840.0, cfg.crop.size)

    def baseline() -> None:
        with media.VideoWriter(d / "baseline.mp4", cfg.fps, crf=cfg.crf, preset=cfg.preset) as w:
            for ch in media.iter_video(src, chunk_frames=cfg.chunk_frames, fps=cfg.fps):
                w.write(np.stack([crop.warp(f, m, cfg.crop.size) for f in ch.frames]))

    _one_clip(d, root, 5)  # warm
    base, video, audio = [], [], []

    def pairs() -> None:
        for _ in range(PAIRS):
            t0 = time.perf_counter()
            baseline()
            base.append(time.perf_counter() - t0)
            parts = _one_clip(d, root, 5)
            video.append(parts["video"])
            audio.append(parts["audio"])

    benchmark.pedantic(pairs, rounds=1, iterations=1)
    b, v, a = (float(np.median(x)) for x in (base, video, audio))
    benchmark.extra_info.update(
        pairs=PAIRS, baseline_s=b, video_task_s=v, audio_task_s=a, ratio_own_audio=(v + a) / b,
        ratio_audio_over_7_views=(v + a / 7) / b, ratio_video_task_only=v / b,
        per_pair_ratio_own_audio=[(vi + ai) / bi for bi, vi, ai in zip(base, video, audio)])


WORKER_CLIPS = int(os.environ.get("BENCH_WORKER_CLIPS", "10"))


@pytest.fixture(scope="module")
def worker_tree(bench_env):
    """``WORKER_CLIPS`` copies of the bench clip as separate MEAD utterances (each with its own audio task)."""
    d, root = bench_env
    src = root / "M010/video/front/happy/level_1/001.mp4"
    wroot = d / "mead_workers"
    for i in range(WORKER_CLIPS):
        p = wroot / f"M0{20 + i}/video/front/happy/level_1/001.mp4"
        p.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, p)
    return d, wroot


def _warm_worker() -> str:
    """Import what a task imports and load the models once, so timing measures the steady state."""
    import cv2  # noqa: F401
    import mediapipe  # noqa: F401
    import torch
    import transformers  # noqa: F401

    from dicetalk_bench.preprocessing import audio_features, pipeline  # noqa: F401

    return f"torch threads={torch.get_num_threads()} cv2 threads={cv2.getNumThreads()}"


def _run_workers(d: Path, root: Path, workers: int, warm: bool) -> float:
    import time

    from dicetalk_bench.preprocessing import pipeline
    from dicetalk_bench.preprocessing.discovery_mead import discover_mead

    clips = discover_mead(root).clips
    assert len(clips) == WORKER_CLIPS
    out = d / f"out_workers{workers}_{'warm' if warm else 'cold'}"
    shutil.rmtree(out, ignore_errors=True)
    if not warm:  # start-up (worker processes, imports, model loads) included
        t0 = time.perf_counter()
        s = pipeline.run(clips, root, out, pipeline.PreprocessConfig(), workers=workers, progress=False)
        assert s.n_failed == 0
        return time.perf_counter() - t0
    from distributed import Client, LocalCluster

    os.environ["DICETALK_BENCH_WORKER"] = "1"  # as pipeline.execute does for its own LocalCluster
    try:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    finally:
        os.environ.pop("DICETALK_BENCH_WORKER", None)
    try:
        with Client(cluster) as client:
            client.run(_warm_worker)
            # one throw-away clip per worker loads BlazeFace and the whisper encoder in every process
            warm_out = d / f"warmup_{workers}"
            shutil.rmtree(warm_out, ignore_errors=True)
            pipeline.run(clips[:workers], root, warm_out, pipeline.PreprocessConfig(),
                         scheduler=cluster.scheduler_address, progress=False)
            t0 = time.perf_counter()
            s = pipeline.run(clips, root, out, pipeline.PreprocessConfig(), scheduler=cluster.scheduler_address,
                             progress=False)
            elapsed = time.perf_counter() - t0
            assert s.n_failed == 0
    finally:
        cluster.close()
    return elapsed


@pytest.mark.parametrize("mode", ["warm", "cold"])
@pytest.mark.parametrize("workers", [1, 2])
def test_workers(benchmark, worker_tree, workers: int, mode: str) -> None:
    d, root = worker_tree
    name = f"workers_{workers}_{mode}"
    elapsed: list[float] = []
    benchmark.pedantic(lambda: elapsed.append(_run_workers(d, root, workers, mode == "warm")), rounds=1, iterations=1)
    _TIMES[name] = elapsed[-1]
    benchmark.extra_info.update(clips=WORKER_CLIPS, seconds=elapsed[-1], per_clip_s=elapsed[-1] / WORKER_CLIPS)
    if workers == 2 and f"workers_1_{mode}" in _TIMES:
        benchmark.extra_info["speedup_1_to_2"] = _TIMES[f"workers_1_{mode}"] / _TIMES[name]
