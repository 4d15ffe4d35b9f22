"""Model benchmarks (pytest-benchmark): cost of the DICE-Talk additions and tiny sampling speed.

Run: ``python -m pytest benchmarks/bench_model.py --benchmark-only``. Ratios against a baseline measured in the
same run are stored in each benchmark's ``extra_info``; absolute times depend on the machine.

- ``test_train_step_dicetalk_vs_stock``: forward + backward of the tiny DICE-Talk network (IP branches with
  4 + 4 tokens, PoseGuider, AudioProj, EmotionModel) against the same tiny stock SVD UNet with CLIP tokens only;
- ``test_paper_size_counts``: parameter counts of every paper-size module, counted on the meta device (nothing
  is allocated);
- ``test_paper_size_training_cost``: FLOPs of one paper-size training step and the traced peak memory of the GPU
  settings of docs/model.md (``model/cost.py``: the real step on fake tensors; estimates, not GPU measurements);
- ``test_tiny_sampling_step``: one window of an Euler step with 3-branch guidance (the branches batched in one
  network call) at tiny size; whole-video sampling costs are in ``bench_sampling.py``.
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


PAPER_SETTINGS = {  # name -> TrainConfig overrides (paper model, batch 1 per GPU)
    "full_bf16_ckpt_512x25": dict(resolution=512, num_frames=25, bf16=True, activation_checkpointing=True),
    "frozen_unet_bf16_ckpt_512x25": dict(resolution=512, num_frames=25, bf16=True, activation_checkpointing=True,
                                         train_unet=False),
    "frozen_unet_bf16_ckpt_384x14": dict(resolution=384, num_frames=14, bf16=True, activation_checkpointing=True,
                                         train_unet=False),
    "full_fp32_512x25": dict(resolution=512, num_frames=25),
}


def test_paper_size_training_cost(benchmark, tmp_path):
    from dicetalk_bench.model.cost import estimate_training_memory, training_flops, write_svd_xt_configs
    from dicetalk_bench.model.train_loop import TrainConfig

    svd = write_svd_xt_configs(tmp_path / "svd-xt-configs")
    flops = benchmark.pedantic(training_flops, args=(TrainConfig(model="paper", resolution=512, num_frames=25), svd),
                               rounds=1, iterations=1)
    gib = {}
    for name, kw in PAPER_SETTINGS.items():
        est = estimate_training_memory(TrainConfig(model="paper", **kw), svd, device_type="cuda")
        gib[name] = {"peak": round(est.peak / 2**30, 2), "weights": round(est.weights / 2**30, 2),
                     "states": round(est.states / 2**30, 2), "activations": round(est.activations / 2**30, 2)}
    benchmark.extra_info.update(train_step_tflop_512x25=flops / 1e12, memory_gib=gib)


@pytest.mark.parametrize("frames", [8])
def test_tiny_sampling_step(benchmark, frames):
    torch.manual_seed(0)
    net = DiceTalkNetwork(TINY).eval()
    x = _inputs(f=frames)
    sigmas = karras_sigmas(25)

    @torch.no_grad()
    def step():  # the three guidance branches batched in one call, as the sampler runs them
        sigma = sigmas[3].float()
        _, _, c_in, c_noise = edm_v_preconditioning(sigma)
        args = {k: torch.cat([v] * 3) for k, v in x.items()}
        args["clip_embeds"][0] = 0
        args["sample"][0, :, 4:] = 0  # no reference latent in the uncond branch
        out = net(**dict(args, timestep=c_noise.reshape(1), drop_conditions=torch.tensor([True, True, False])))
        return three_branch_guidance(*out.unet.sample.split(1), 3.0, 6.0)

    benchmark(step)
    benchmark.extra_info.update(steps_per_s=1.0 / benchmark.stats.stats.median, frames=frames)
