"""Sampling maths: SVD schedule and Euler against diffusers, guidance identities, shifted-window fusion."""

from __future__ import annotations

import pytest
import torch

from dicetalk_bench.model.sampling import (batched_window_denoiser, edm_v_preconditioning, fuse_window_batches,
                                           fuse_windows, karras_sigmas, make_svd_scheduler, release_windows,
                                           sample_euler, seed_from_id, shifted_window_denoiser, three_branch_guidance,
                                           unet_calls_per_step, v_target, window_groups)


def test_karras_sigmas_equal_svd_scheduler():
    sched = make_svd_scheduler()
    sched.set_timesteps(25)
    torch.testing.assert_close(karras_sigmas(25).float(), sched.sigmas.float(), rtol=1e-5, atol=1e-6)
    assert float(karras_sigmas(25)[0]) == pytest.approx(700.0)
    # continuous timesteps are 0.25 log sigma (the UNet's c_noise)
    torch.testing.assert_close(sched.timesteps.float(), edm_v_preconditioning(sched.sigmas[:-1])[3].float(),
                               rtol=1e-5, atol=1e-5)


def test_euler_equals_diffusers_scheduler_loop():
    """Our Euler over D(x; sigma) = c_skip x + c_out F(c_in x) reproduces the diffusers SVD scheduler loop."""
    torch.manual_seed(0)
    w = torch.randn(4, 4) * 0.3

    def network(x_in, c_noise):  # any fixed function stands in for the UNet
        return torch.tanh(x_in.float() @ w) + 0.1 * c_noise

    sched = make_svd_scheduler()
    sched.set_timesteps(8)
    x0 = torch.randn(2, 4) * sched.init_noise_sigma
    x = x0.clone()
    for t in sched.timesteps:
        x_in = sched.scale_model_input(x, t)
        x = sched.step(network(x_in, t), t, x).prev_sample

    def denoise(x, sigma):
        c_skip, c_out, c_in, c_noise = edm_v_preconditioning(sigma)
        return c_skip * x + c_out * network(c_in * x, c_noise.float())

    ours = sample_euler(denoise, x0.double(), karras_sigmas(8))
    torch.testing.assert_close(ours.float(), x, rtol=1e-4, atol=1e-4)


def test_v_target_makes_denoiser_exact():
    clean, noise, sigma = torch.randn(3, 5), torch.randn(3, 5), torch.tensor(2.5)
    c_skip, c_out, _, _ = edm_v_preconditioning(sigma)
    x = clean + sigma * noise
    torch.testing.assert_close(c_skip * x + c_out * v_target(clean, noise, sigma), clean)


def test_euler_is_exact_for_a_perfect_denoiser_of_a_point_mass():
    target = torch.randn(2, 3)
    out = sample_euler(lambda x, s: target.expand_as(x), torch.randn(2, 3) * 700, karras_sigmas(5))
    torch.testing.assert_close(out, target)


def test_three_branch_guidance():
    u, i, f = torch.randn(3, 2, 4).unbind(0)
    torch.testing.assert_close(three_branch_guidance(u, i, f, 1.0, 1.0), f)
    torch.testing.assert_close(three_branch_guidance(u, i, f, 0.0, 0.0), u)
    torch.testing.assert_close(three_branch_guidance(u, i, f, 3.0, 6.0), u + 3 * (i - u) + 6 * (f - i))
    c = torch.randn(2, 4)  # affine: guiding denoised (= c + out) equals c + guided outputs
    torch.testing.assert_close(three_branch_guidance(u + c, i + c, f + c, 3.0, 6.0),
                               c + three_branch_guidance(u, i, f, 3.0, 6.0))


def test_step_zero_equals_plain_windowing():
    x = torch.randn(2, 75, 3)
    fn = lambda xw, idx: xw.cumsum(1) * (1 + idx[None, :, None])  # window-dependent, not per-frame
    fused = fuse_windows(fn, x, release_windows(75, 25, 0, 7))
    plain = torch.cat([fn(x[:, s:s + 25], torch.arange(s, s + 25)) for s in (0, 25, 50)], dim=1)
    torch.testing.assert_close(fused, plain)


@pytest.mark.parametrize("n, step", [(25, 0), (60, 1), (60, 2), (77, 10), (100, 3)])
def test_fusion_weights_every_frame_equally(n, step):
    windows = release_windows(n, 25, step, 7)
    counts = torch.zeros(n).index_add_(0, torch.cat(windows), torch.ones(25 * len(windows)))
    assert counts.min() >= 1 and len(windows) == -(-n // 25)
    x = torch.randn(1, n, 2)
    torch.testing.assert_close(fuse_windows(lambda xw, idx: xw, x, windows), x)  # weights sum to one
    torch.testing.assert_close(fuse_windows(lambda xw, idx: torch.ones_like(xw), x, windows), torch.ones_like(x))


def test_window_groups_cover_the_windows_in_order():
    assert [list(g) for g in window_groups(5, 2)] == [[0, 1], [2, 3], [4]]
    assert [list(g) for g in window_groups(3, 3)] == [[0, 1, 2]]
    assert [list(g) for g in window_groups(2, 8)] == [[0, 1]]
    with pytest.raises(ValueError, match="window_batch must be >= 1"):
        window_groups(3, 0)


@pytest.mark.parametrize("window_batch", [2, 3, 4, 9])
def test_batched_fusion_equals_one_window_at_a_time(window_batch):
    n, step = 104, 3  # 5 windows, the first wrapping around
    x = torch.randn(2, n, 3)
    windows = release_windows(n, 25, step, 7)
    fn = lambda xw, idx: xw.cumsum(1) * (1 + idx[None, :, None])  # window-dependent, not per-frame
    calls = []

    def batch_fn(xs, idx):
        calls.append(len(idx))
        assert xs.shape == (len(idx), 2, 25, 3)
        return torch.stack([fn(xw, i) for xw, i in zip(xs, idx)])

    batched = fuse_window_batches(batch_fn, x, windows, window_batch)
    assert torch.equal(batched, fuse_windows(fn, x, windows))  # the same sums in the same order: bit-identical
    assert calls == [len(g) for g in window_groups(5, window_batch)]


def test_batched_denoiser_equals_the_one_window_denoiser_and_calls_less():
    sigmas, n = karras_sigmas(3), 80  # 105 frames with pad: 5 windows per step
    x = torch.randn(1, n + 25, 2)
    seen = {"one": 0, "batched": 0}

    def one(xw, sigma, idx):
        seen["one"] += 1
        return xw * torch.cos(idx.float())[None, :, None] / (1 + sigma)

    def batched(xs, sigma, idx):
        seen["batched"] += 1
        return xs * torch.cos(idx.float())[:, None, :, None] / (1 + sigma)

    a = sample_euler(shifted_window_denoiser(one, sigmas), x, sigmas)
    b = sample_euler(batched_window_denoiser(batched, sigmas, window_batch=2), x, sigmas)
    assert torch.equal(a, b)
    assert seen == {"one": 3 * 5, "batched": 3 * unet_calls_per_step(n, window_batch=2)} and seen["batched"] == 9


def test_windows_wrap_around():
    # step 1: starts moved back by 7 -> the first window wraps from the end of the sequence to its start
    assert release_windows(30, 25, 1, 7)[0].tolist() == list(range(23, 30)) + list(range(18))
    with pytest.raises(ValueError, match="uncovered"):
        fuse_windows(lambda xw, idx: xw, torch.zeros(1, 30, 1), release_windows(30, 25, 0, 7)[:1])


def test_seed_from_id_is_stable_and_distinct():
    assert seed_from_id("M003_angry_001") == seed_from_id("M003_angry_001")
    assert seed_from_id("M003_angry_001") != seed_from_id("M003_angry_002")
    assert 0 <= seed_from_id("x") < 2**63
