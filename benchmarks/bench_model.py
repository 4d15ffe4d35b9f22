"""Model benchmarks (pytest-benchmark): cost of the DICE-Talk additions and tiny sampling speed.

Run: ``python -m pytest benchmarks/bench_model.py --benchmark-only``. Ratios against a baseline measured in the
same run are stored in each benchmark's ``extra_info``; absolute times depend on the machine.

- ``test_train_step_dicetalk_vs_stock``: forward + backward of the tiny DICE-Talk network (IP branches with
  4 + 4 tokens, PoseGuider, AudioProj, EmotionModel) against the same tiny stock SVD UNet with CLIP tokens only;
- ``test_paper_size_counts``: parameter counts of every paper-size module, counted on the meta device (nothing
  is allocated). FLOPs are not counted yet (torch's FlopCounterMode fails on diffusers' AlphaBlender on meta);
- ``test_tiny_sampling_step``: one Euler step with 3-branch guidance (three network calls) at tiny size.
"""

from __future__ import annotations

import time

import pytest
import torch

from dicetalk_bench.model.config import PAPER, TINY
from dicetalk_bench.model.network import DiceTalkNetwork
from dicetalk_bench.model.sampling import edm_v_preconditioning, karras_sigmas, three_branch_guidance
from dicetalk_bench.model.unet import build_unet, unet_kwargs

B, F, H = 1, 8, 8  # batch, frames, latent side (64 px)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread gives stable timings on a shared CPU (more threads only spin)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _inputs(b=B, f=F, h=H):
    return dict(sample=torch.randn(b, f, 8, h, h), timestep=torch.full((b,), 0.2),
                clip_embeds=torch.randn(b, 1, 32), added_time_ids=torch.tensor([[12.5, 8.0, 16.0]] * b),
                whisper_windows=torch.randn(b, f, 10, 5, 384), emotion_prior=torch.randn(b, f, 256),
                face_mask=torch.ones(b, f, 3, 8 * h, 8 * h))


def _median_time(fn, repeats=5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def test_train_step_dicetalk_vs_stock(benchmark):
    from diffusers import UNetSpatioTemporalConditionModel

    torch.manual_seed(0)
    net = DiceTalkNetwork(TINY)
    stock = UNetSpatioTemporalConditionModel(**unet_kwargs(TINY))
    x = _inputs()

    def ours():
        net.zero_grad()
        out = net(**x)
        out.unet.sample.square().mean().backward()

    def base():
        stock.zero_grad()
        stock(x["sample"], x["timestep"], x["clip_embeds"], x["added_time_ids"]).sample.square().mean().backward()

    ours(), base()  # warm-up
    base_s = _median_time(base)
    benchmark(ours)
    ours_s = benchmark.stats.stats.median
    benchmark.extra_info.update(stock_step_s=base_s, dicetalk_step_s=ours_s, ratio=ours_s / base_s,
                                adapter_tokens=list(TINY.ip_tokens), frames=F, latent_side=H)


def test_paper_size_counts(benchmark):
    def count():
        with torch.device("meta"):
            unet = build_unet(PAPER)
            net = DiceTalkNetwork(PAPER, unet=unet)
        per_module = {name: sum(p.numel() for p in getattr(net, name).parameters())
                      for name in ("unet", "pose_guider", "audio_proj", "emo_model")}
        ip = sum(p.numel() for n, p in unet.named_parameters() if ".processor." in n)
        return per_module, ip

    per_module, ip = benchmark.pedantic(count, rounds=1, iterations=1)
    benchmark.extra_info.update(params=per_module, ip_params=ip,
                                ip_fraction_of_unet=ip / per_module["unet"])
    assert per_module["unet"] == 1_626_859_242 and ip == 102_236_160


@pytest.mark.parametrize("frames", [8])
def test_tiny_sampling_step(benchmark, frames):
    torch.manual_seed(0)
    net = DiceTalkNetwork(TINY).eval()
    x = _inputs(f=frames)
    sigmas = karras_sigmas(25)

    @torch.no_grad()
    def step():
        sigma = sigmas[3].float()
        _, _, c_in, c_noise = edm_v_preconditioning(sigma)
        outs = []
        for keep_ref, keep_cond in ((False, False), (True, False), (True, True)):
            args = dict(x, timestep=c_noise.reshape(1), drop_conditions=torch.tensor([not keep_cond]))
            if not keep_ref:
                args["clip_embeds"] = torch.zeros_like(x["clip_embeds"])
            outs.append(net(**args).unet.sample)
        return three_branch_guidance(*outs, 3.0, 6.0)

    benchmark(step)
    benchmark.extra_info.update(steps_per_s=1.0 / benchmark.stats.stats.median, frames=frames)
