"""Generation benchmarks (pytest-benchmark): split generation's overhead, Dask workers, windows per network call.

Run: ``python -m pytest benchmarks/bench_generation.py --benchmark-only``. Tiny model on the CPU (a checkpoint
trained for one step, random SVD), ``BENCH_GEN_CLIPS`` (default 20) clips of 25 frames at 32 px, native frame
rate, 2 Euler steps, one torch thread per process. Each benchmark measures its own baseline in the same run and
stores the ratio in ``extra_info`` (with the load average, since the figures move with other jobs on the cores):

- ``test_split_generation_vs_pure_sampling``: :func:`split_generation.generate_split` in this process (model load,
  input hashes, H.264 + AAC writing, sidecars: everything) against the same clips' ``Sampler.generate_clip`` calls
  with the model already loaded. Goal <= 1.1x (loading amortised).
- ``test_two_workers_vs_one``: the split on a LocalCluster of 1 vs 2 one-thread workers, ``cold`` (cluster start,
  imports and model loads included) and ``warm`` (workers started and their model loaded beforehand). Goal
  >= 1.7x on 2 cores.
- ``test_window_batch_per_clip``: one clip of 175 frames (8 windows per step) with 1, 4 and 8 windows per
  network call, alternated; ratios of the medians against 1.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
import torch

N_CLIPS = int(os.environ.get("BENCH_GEN_CLIPS", "20"))
N_FRAMES = 25
SIZE = 32
STEPS = 2
SETTINGS = (("frame_rate", "native"), ("steps", STEPS))


def _load_average() -> float:
    return os.getloadavg()[0]


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _preprocessed_writer():
    """The model tests' writer of a tiny preprocessing output (tests/model/conftest.py ``write_preprocessed``)."""
    path = Path(__file__).resolve().parents[1] / "tests" / "model" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_model_test_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_preprocessed


@pytest.fixture(scope="module")
def gen_env(tmp_path_factory):
    """(work folder, SamplerSpec, jobs, manifest rows) for ``N_CLIPS`` tiny test clips and a 1-step checkpoint."""
    import pyarrow.parquet as pq

    from dicetalk_bench.model import checkpoint as ckpt
    from dicetalk_bench.model import split_generation as sg
    from dicetalk_bench.model.svd import write_random_svd_xt
    from dicetalk_bench.model.train_loop import TrainConfig, train
    from dicetalk_bench.weights import write_random_priors

    d = tmp_path_factory.mktemp("generation")
    emotions = ("happy", "sad", "angry", "fear")
    clips = tuple((f"mead/M003/front/{emotions[i % 4]}/level_1/{i:03d}", emotions[i % 4], 1) for i in range(N_CLIPS))
    data = _preprocessed_writer()(d / "data", n_frames=N_FRAMES, size=SIZE, clips=clips)
    write_random_priors(d / "emo", 0)
    write_random_svd_xt(d / "svd", 0)
    cfg = TrainConfig(model="tiny", data_root=data, emotion_source="class-mean", priors_dir=d / "emo",
                      svd=str(d / "svd"), allow_unverified=True, out_dir=d / "run", num_frames=4, resolution=SIZE,
                      steps=1, checkpoint_every=1, memory_check=False)
    with _one_thread():
        train(cfg, device="cpu")
    folder = ckpt.latest_checkpoint(cfg.out_dir)
    rows = pq.read_table(data / "clips.parquet").to_pylist()
    spec = sg.SamplerSpec(checkpoint=str(folder), checkpoint_sha256="b" * 64, data_root=str(data), settings=SETTINGS)
    return d, spec, sg.make_jobs(rows, "mead", "test"), rows


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def test_split_generation_vs_pure_sampling(benchmark, gen_env):
    from dicetalk_bench.model import split_generation as sg
    from dicetalk_bench.model.pipeline import load_sampler

    d, spec, jobs, rows = gen_env
    load_before = _load_average()
    times: dict[str, list[float]] = {"sampling": [], "split": []}

    def run() -> None:
        with _one_thread():
            sampler = load_sampler(spec)  # baseline: the model already loaded, frames only
            sampler.generate_clip(rows[0])  # first-call warm-up, as the split run gets from its own load
            for rnd in range(2):  # alternated, so load drift hits both alike
                t0 = time.perf_counter()
                for row in rows:
                    sampler.generate_clip(row)
                times["sampling"].append(time.perf_counter() - t0)
                sg._SAMPLERS.clear()  # the split run loads its model itself
                t0 = time.perf_counter()
                summary = sg.generate_split(jobs, spec, _fresh(d / f"split{rnd}"), progress=False)
                times["split"].append(time.perf_counter() - t0)
                assert len(summary.generated) == N_CLIPS and not summary.failures

    benchmark.pedantic(run, rounds=1, iterations=1)
    sampling, split = (float(np.median(times[k])) for k in ("sampling", "split"))
    benchmark.extra_info.update(clips=N_CLIPS, frames=N_FRAMES, steps=STEPS, sampling_s=sampling, split_s=split,
                                ratio_split_vs_sampling=split / sampling,
                                per_round_ratio=[s / b for s, b in zip(times["split"], times["sampling"])],
                                load_average=[load_before, _load_average()])


def _load_on_worker(spec) -> int:
    """Load the sampler of ``spec`` in a Dask worker (the warm start); returns the worker's load count."""
    from dicetalk_bench.model import split_generation as sg

    sg.cached_sampler(spec)
    return sg.sampler_loads()


def _split_on_workers(d: Path, spec, jobs, workers: int, warm: bool) -> float:
    from dicetalk_bench.model import split_generation as sg

    out = _fresh(d / f"workers{workers}_{'warm' if warm else 'cold'}")
    if not warm:  # cluster start, imports and model loads included
        t0 = time.perf_counter()
        summary = sg.generate_split(jobs, spec, out, workers=workers, progress=False)
        elapsed = time.perf_counter() - t0
    else:
        import cloudpickle
        from distributed import Client

        cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import this file
        cluster = sg._local_cluster(workers, False)  # the cluster generate_split starts for --workers N
        try:
            with Client(cluster) as client:
                assert all(n >= 1 for n in client.run(_load_on_worker, spec).values())
                t0 = time.perf_counter()
                summary = sg.generate_split(jobs, spec, out, scheduler=cluster.scheduler_address, progress=False)
                elapsed = time.perf_counter() - t0
        finally:
            cluster.close()
    assert len(summary.generated) == N_CLIPS and not summary.failures
    return elapsed


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_two_workers_vs_one(benchmark, gen_env, warm):
    d, spec, jobs, _ = gen_env
    load_before = _load_average()
    times: dict[int, float] = {}

    def run() -> None:
        for workers in (1, 2):
            times[workers] = _split_on_workers(d, spec, jobs, workers, warm)

    benchmark.pedantic(run, rounds=1, iterations=1)
    benchmark.extra_info.update(clips=N_CLIPS, warm=warm, one_worker_s=times[1], two_workers_s=times[2],
                                speedup_two_vs_one=times[1] / times[2],
                                load_average=[load_before, _load_average()], cores=os.cpu_count())


WINDOW_BATCH_FRAMES = 175  # native: 175 + 25 pad frames = 8 windows per step


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    from dicetalk_bench.model.config import TINY
    from dicetalk_bench.model.network import DiceTalkNetwork
    from dicetalk_bench.model.pipeline import LoadedModel
    from dicetalk_bench.model.svd import load_frozen_encoders, write_random_svd_xt

    svd = tmp_path_factory.mktemp("svd") / "svd"
    write_random_svd_xt(svd, 0)
    torch.manual_seed(0)
    return LoadedModel(DiceTalkNetwork(TINY).eval(), load_frozen_encoders(svd), {}, {}, {"frame_stride": 1}, SIZE)


def test_window_batch_per_clip(benchmark, random_model):
    from dicetalk_bench.model.pipeline import SampleConfig, generate_frames

    states = np.random.default_rng(0).standard_normal((WINDOW_BATCH_FRAMES, 2, 5, 384)).astype(np.float16)
    prior = np.zeros((1, 256), np.float32)
    batches = (1, 4, 8)
    times: dict[int, list[float]] = {k: [] for k in batches}
    load_before = _load_average()

    def clip(k: int) -> None:
        cfg = SampleConfig(steps=STEPS, frame_rate="native", window_batch=k)
        generate_frames(random_model, torch.zeros(3, SIZE, SIZE), states, prior, np.array([4, 4, 28, 28]), cfg)

    def run() -> None:
        with _one_thread():
            clip(1)  # warm-up
            for _ in range(3):
                for k in batches:
                    t0 = time.perf_counter()
                    clip(k)
                    times[k].append(time.perf_counter() - t0)

    benchmark.pedantic(run, rounds=1, iterations=1)
    med = {k: float(np.median(v)) for k, v in times.items()}
    benchmark.extra_info.update(frames=WINDOW_BATCH_FRAMES, windows_per_step=8, steps=STEPS,
                                per_clip_s={str(k): v for k, v in med.items()},
                                time_ratio_vs_batch_1={str(k): med[k] / med[1] for k in batches},
                                load_average=[load_before, _load_average()])
