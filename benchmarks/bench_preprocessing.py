"""Preprocessing benchmarks (pytest-benchmark): per-clip cost against the unavoidable video work.

    pytest benchmarks/bench_preprocessing.py --benchmark-only

Clip: one take of the full-size demo data (``demo_data --size full``: 1920x1080, 30 fps, 3 s, 48 kHz AAC,
the MEAD layout with its own ``.m4a``), rendered once per session by the demo builder itself.

- ``baseline``: decode + 25 fps resample + 512 crop + x264 encode with the pipeline's crf and preset, of
  **the same output frames as the pipeline**: the crop affines are the ones the pipeline wrote to
  ``faces.parquet`` in a warm-up run. (A fixed box would encode other pixels: x264's cost depends on the
  picture, and a box with flat background encodes in about half the time of a face crop.) No audio.
- ``clip_default``: the full per-clip preprocessing (detection every 5th frame, tracking, smoothing, crop,
  encode with the 16 kHz audio muxed in, faces.parquet) plus the clip's audio task (log-mel + random
  whisper-tiny, Parquet);
- ``clip_stride1``: the same with detection on every frame;
  ``extra_info`` splits it into the video task and the audio task and gives the ratio with the clip's own
  audio task and with the audio task amortised over MEAD's 7 views of an utterance (one audio task each);
- ``clip_vs_baseline_paired[auto|1]``: baseline and clip alternated ``BENCH_PAIRS`` (default 5) times,
  ratios of the medians (the figure to report on a shared machine: load drift hits both alike). ``auto``:
  FFmpeg/x264/torch pick their thread counts (a serial run); ``1``: one thread for everything, as in a
  Dask worker (then the ratio is one of CPU work);
- ``workers[1|2-warm|cold]``: ``BENCH_WORKER_CLIPS`` (default 10) clips through :func:`pipeline.run` on a
  LocalCluster with one thread per worker. ``warm``: the workers are started, have imported torch /
  transformers / mediapipe (``client.run``) and have processed one throw-away clip each before the clock
  starts (steady state); ``cold``: start-up included, as a fresh command line run sees it.

Each benchmark stores its ratio to the baseline (or the 1-worker speedup) in ``extra_info``. Goals: clip /
baseline <= 1.5; 1 -> 2 worker speedup >= 1.7.

    pytest benchmarks/bench_preprocessing.py --benchmark-only --benchmark-json=out.json
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

_TIMES: dict[str, float] = {}
#: the full-size demo take the clip benchmarks use (a test speaker, an expressive emotion)
TAKE = dict(actor="M003", emotion="happy", level=3, sentence="028")


def pipeline_config():
    """The default PreprocessConfig with the random whisper-tiny of seed 0 (benchmarks have no real weights; the
    encoder's cost does not depend on its values)."""
    from dicetalk_bench.preprocessing import pipeline

    return pipeline.with_overrides(pipeline.PreprocessConfig(), audio=dict(whisper="random:0"))


def _clip_rel(actor: str) -> Path:
    return Path(actor, "video", "front", TAKE["emotion"], f"level_{TAKE['level']}", f"{TAKE['sentence']}.mp4")


def _audio_rel(actor: str) -> Path:
    return Path(actor, "audio", TAKE["emotion"], f"level_{TAKE['level']}", f"{TAKE['sentence']}.m4a")


@pytest.fixture(scope="module")
def bench_env(tmp_path_factory: pytest.TempPathFactory):
    """(work dir, MEAD root holding the one full-size demo take, crop affines the pipeline chose for it)."""
    import dataclasses

    import pyarrow.parquet as pq

    from dicetalk_bench.allocator import retain_freed_memory
    from dicetalk_bench.demo_data.build import demo_context, demo_spec
    from dicetalk_bench.demo_data.mead import MeadTake, build_mead
    from dicetalk_bench.preprocessing.whisper import ensure_random_whisper_tiny

    # the allocator setting every pipeline task applies to its process, applied up front so the baseline
    # runs under it too (the same process, the same allocator)
    retain_freed_memory()
    d = tmp_path_factory.mktemp("bench")
    os.environ["DICETALK_BENCH_CACHE"] = str(d / "cache")
    ensure_random_whisper_tiny(0)
    root = d / "mead"
    spec = dataclasses.replace(demo_spec("full").mead, takes=(MeadTake(**TAKE),))
    build_mead(root, spec, demo_context(seed=0))
    out = d / "out_affines"
    _one_clip(d, root, 5, out=out)
    faces = next((out / "faces").rglob("*.parquet"))
    mats = pq.read_table(faces, columns=["crop_affine"]).column("crop_affine").combine_chunks().to_numpy_ndarray()
    return d, root, mats


@contextlib.contextmanager
def _threads(mode: str) -> Iterator[int | None]:
    """``auto``: libraries choose (codec threads None); ``1``: one thread everywhere, as a Dask worker runs."""
    if mode == "auto":
        yield None
        return
    import cv2
    import torch

    before = (torch.get_num_threads(), cv2.getNumThreads(), os.environ.get("DICETALK_BENCH_WORKER"))
    os.environ["DICETALK_BENCH_WORKER"] = "1"  # the pipeline's tasks then use one thread (torch, cv2, codecs)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        yield 1
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])
        if before[2] is None:
            os.environ.pop("DICETALK_BENCH_WORKER", None)
        else:
            os.environ["DICETALK_BENCH_WORKER"] = before[2]


def _baseline(d: Path, root: Path, mats: np.ndarray, threads: int | None = None) -> None:
    """Decode, resample to 25 fps, crop each frame with the pipeline's own affine, encode (no audio)."""
    from dicetalk_bench import media
    from dicetalk_bench.preprocessing import crop
    cfg = pipeline_config()
    with media.VideoWriter(d / "baseline.mp4", cfg.fps, crf=cfg.crf, preset=cfg.preset, threads=threads) as w:
        for ch in media.iter_video(root / _clip_rel(TAKE["actor"]), chunk_frames=cfg.chunk_frames, fps=cfg.fps,
                                   threads=threads):
            k = ch.start_index
            w.write(np.stack([crop.warp(f, mats[min(k + i, len(mats) - 1)], cfg.crop.size)
                              for i, f in enumerate(ch.frames)]))


def _ratio(benchmark, name: str, base: str) -> None:
    _TIMES[name] = benchmark.stats.stats.mean
    if base in _TIMES:
        benchmark.extra_info[f"ratio_vs_{base}"] = _TIMES[name] / _TIMES[base]


def test_baseline_decode_resample_crop_encode(benchmark, bench_env) -> None:
    d, root, mats = bench_env
    benchmark.pedantic(lambda: _baseline(d, root, mats), rounds=2, iterations=1, warmup_rounds=0)
    _ratio(benchmark, "baseline", "baseline")


def _one_clip(d: Path, root: Path, stride: int, out: Path | None = None) -> dict[str, float]:
    """Run one clip's tasks in process; returns seconds per task kind ("video", "audio")."""
    from dicetalk_bench.preprocessing import pipeline
    from dicetalk_bench.preprocessing.discovery_mead import discover_mead

    cfg = pipeline.with_overrides(pipeline_config(), faces=dict(stride=stride))
    clip = discover_mead(root).clips[0]
    out = out or d / f"out_stride{stride}"
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
    d, root, _ = bench_env
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


@pytest.mark.parametrize("threads", ["auto", "1"])
def test_clip_vs_baseline_paired(benchmark, bench_env, threads: str) -> None:
    """Baseline and whole clip alternated ``PAIRS`` times: ratios of medians, robust to a shared machine's
    load drifting between two separate benchmarks."""
    d, root, mats = bench_env
    base, video, audio = [], [], []
    with _threads(threads) as n:
        _one_clip(d, root, 5)  # warm
        _baseline(d, root, mats, n)

        def pairs() -> None:
            for _ in range(PAIRS):
                t0 = time.perf_counter()
                _baseline(d, root, mats, n)
                base.append(time.perf_counter() - t0)
                parts = _one_clip(d, root, 5)
                video.append(parts["video"])
                audio.append(parts["audio"])

        benchmark.pedantic(pairs, rounds=1, iterations=1)
    b, v, a = (float(np.median(x)) for x in (base, video, audio))
    benchmark.extra_info.update(
        threads=threads, pairs=PAIRS, baseline_s=b, video_task_s=v, audio_task_s=a, ratio_own_audio=(v + a) / b,
        ratio_audio_over_7_views=(v + a / 7) / b, ratio_video_task_only=v / b,
        per_pair_ratio_own_audio=[(vi + ai) / bi for bi, vi, ai in zip(base, video, audio)])


WORKER_CLIPS = int(os.environ.get("BENCH_WORKER_CLIPS", "10"))


@pytest.fixture(scope="module")
def worker_tree(bench_env):
    """``WORKER_CLIPS`` copies of the bench take as separate MEAD utterances (each with its own audio task)."""
    d, root, _ = bench_env
    wroot = d / "mead_workers"
    for i in range(WORKER_CLIPS):
        actor = f"M0{20 + i}"
        for rel, dst in ((_clip_rel(TAKE["actor"]), _clip_rel(actor)), (_audio_rel(TAKE["actor"]), _audio_rel(actor))):
            (wroot / dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, wroot / dst)
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
    from dicetalk_bench.preprocessing import pipeline
    from dicetalk_bench.preprocessing.discovery_mead import discover_mead

    clips = discover_mead(root).clips
    assert len(clips) == WORKER_CLIPS
    out = d / f"out_workers{workers}_{'warm' if warm else 'cold'}"
    shutil.rmtree(out, ignore_errors=True)
    if not warm:  # start-up (worker processes, imports, model loads) included
        t0 = time.perf_counter()
        s = pipeline.run(clips, root, out, pipeline_config(), workers=workers, progress=False)
        assert s.n_failed == 0
        return time.perf_counter() - t0
    from distributed import Client

    cluster = pipeline.local_cluster(workers)  # as pipeline.execute starts its own
    try:
        with Client(cluster) as client:
            client.run(_warm_worker)
            # one throw-away clip per worker loads BlazeFace and the whisper encoder in every process
            warm_out = d / f"warmup_{workers}"
            shutil.rmtree(warm_out, ignore_errors=True)
            pipeline.run(clips[:workers], root, warm_out, pipeline_config(),
                         scheduler=cluster.scheduler_address, progress=False)
            t0 = time.perf_counter()
            s = pipeline.run(clips, root, out, pipeline_config(), scheduler=cluster.scheduler_address,
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
