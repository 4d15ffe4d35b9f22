"""Sampling benchmarks (pytest-benchmark): release (12.5 fps + RIFE) vs native (25 fps) mode, and RIFE speed.

Run: ``python -m pytest benchmarks/bench_sampling.py --benchmark-only``. One intra-op thread; figures in each
benchmark's ``extra_info``.

- ``test_sampling_per_audio_second``: network calls (the three guidance branches of a window in one call) and
  wall time per second of audio of :func:`generate_frames` at tiny size (random network, random SVD folder,
  random RIFE; 32 px, 2 Euler steps) for 3 s and 30 s clips in both modes. Windows per step:
  ceil((N / 2 + 25) / 25) in release mode, ceil((N + 25) / 25) in native mode (N 25-fps frames).
- ``test_rife_frames_per_second_512``: middle frames per second of the HDv3 IFNet at 512 x 512 on the CPU.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dicetalk_bench.model.sampling import unet_calls_per_step

STEPS = 2


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from dicetalk_bench.model.config import TINY
    from dicetalk_bench.model.network import DiceTalkNetwork
    from dicetalk_bench.model.pipeline import LoadedModel
    from dicetalk_bench.model.rife import IFNet
    from dicetalk_bench.model.svd import load_frozen_encoders, write_random_svd_xt

    svd = tmp_path_factory.mktemp("svd") / "svd"
    write_random_svd_xt(svd, 0)
    torch.manual_seed(0)
    return LoadedModel(DiceTalkNetwork(TINY).eval(), load_frozen_encoders(svd), {}, {}, {"frame_stride": 2}, 32,
                       rife=IFNet().eval())


@pytest.mark.parametrize("mode", ["release", "native"])
@pytest.mark.parametrize("seconds", [3, 30])
def test_sampling_per_audio_second(benchmark, tiny_model, mode, seconds):
    from dicetalk_bench.model.pipeline import SampleConfig, generate_frames

    n = 25 * seconds
    states = np.random.default_rng(0).standard_normal((n, 2, 5, 384)).astype(np.float16)
    prior = np.zeros((1, 256), np.float32)
    cfg = SampleConfig(steps=STEPS, frame_rate=mode, window_batch=1)  # one window per call (bench_generation: more)
    calls = []
    net = tiny_model.net
    hook = net.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        out = benchmark.pedantic(generate_frames, args=(tiny_model, torch.zeros(3, 32, 32), states, prior,
                                                        np.array([4, 4, 28, 28]), cfg), rounds=1, iterations=1)
    finally:
        hook.remove()
    generated = math.ceil(n / (2 if mode == "release" else 1))
    assert len(out) == n and len(calls) == STEPS * unet_calls_per_step(generated)
    seconds_taken = benchmark.stats.stats.median
    benchmark.extra_info.update(mode=mode, audio_s=seconds, generated_frames=generated,
                                network_calls_per_step=len(calls) // STEPS,
                                network_calls_per_audio_s=len(calls) / STEPS / seconds,
                                wall_s_per_audio_s=seconds_taken / seconds, steps=STEPS)


def test_rife_frames_per_second_512(benchmark):
    from dicetalk_bench.model.rife import IFNet

    torch.manual_seed(0)
    net = IFNet().eval()
    a, b = torch.rand(1, 3, 512, 512), torch.rand(1, 3, 512, 512)
    with torch.no_grad():
        net(a, b)  # warm-up
        benchmark.pedantic(lambda: net(a, b), rounds=3, iterations=1)
    benchmark.extra_info.update(frames_per_s=1.0 / benchmark.stats.stats.median, size=512, threads=1)


def window_call_flops(size: int = 512, frames: int = 25) -> int:
    """FLOPs (torch ``FlopCounterMode``: two per multiply-add) of one paper-size network call of the sampler: the
    three guidance branches of a ``frames``-frame window at ``size`` px, traced on fake tensors (nothing is
    allocated or computed)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    from dicetalk_bench.model.config import PAPER
    from dicetalk_bench.model.network import DiceTalkNetwork

    h = size // 8
    with FakeTensorMode():  # autograd on: FlopCounterMode's module tracker needs it
        net = DiceTalkNetwork(PAPER).eval()
        args = (torch.randn(3, frames, 8, h, h), torch.ones(1), torch.randn(3, 1, 1024), torch.ones(3, 3),
                torch.randn(3, frames, 10, 5, 384), torch.randn(3, frames, 256), torch.ones(3, frames, 3, size, size))
        with FlopCounterMode(display=False) as counter:
            net(*args, drop_conditions=torch.tensor([True, True, False]))
    return counter.get_total_flops()


def rife_flops(size: int = 512) -> int:
    """FLOPs of one RIFE middle frame at ``size`` x ``size`` (fake tensors)."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    from dicetalk_bench.model.rife import IFNet

    with FakeTensorMode():  # autograd on: FlopCounterMode's module tracker needs it
        net = IFNet().eval()
        a = torch.rand(1, 3, size, size)
        with FlopCounterMode(display=False) as counter:
            net(a, a)
    return counter.get_total_flops()


def test_paper_size_gpu_seconds_per_video_second(benchmark):
    """Estimate, not a measurement: FLOPs per second of video in both modes for a long clip (windows per second
    of video: 12.5 / 25 in release mode, 25 / 25 in native mode; 25 steps), and the GPU seconds they take at a
    sustained 40 % of an H100's ~990 dense bf16/fp16 TFLOP/s. VAE decoding and CLIP are left out."""
    call = benchmark.pedantic(window_call_flops, rounds=1, iterations=1)
    rife = rife_flops()
    sustained = 0.4 * 990e12
    per_video_s = {"release": 25 * (12.5 / 25) * call + 12.5 * rife, "native": 25 * (25 / 25) * call}
    benchmark.extra_info.update(window_call_tflop=call / 1e12, rife_gflop_per_frame=rife / 1e9,
                                tflop_per_video_s={k: v / 1e12 for k, v in per_video_s.items()},
                                est_gpu_s_per_video_s={k: v / sustained for k, v in per_video_s.items()})
