"""Sampling maths as pure functions over denoiser callables (k-diffusion style; DICE-Talk).

- SVD's noise schedule: EDM (Karras et al. 2022) sigmas with v-prediction preconditioning, as diffusers'
  ``EulerDiscreteScheduler`` configured by SVD-xt's ``scheduler_config.json`` (:data:`SVD_SCHEDULER_CONFIG`);
- :func:`sample_euler`: Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 1 without churn);
- :func:`three_branch_guidance`: classifier-free guidance over uncond / image-only / full predictions;
- :func:`release_windows` / :func:`fuse_windows`: time-aware position-shift fusion as the DICE-Talk release runs it
  (from Sonic): the video plus 25 pad frames is denoised as 25-frame windows whose tiling moves back by 7 frames
  per step modulo 25, wrapping around, predictions averaged per frame; :func:`fuse_window_batches` /
  :func:`batched_window_denoiser` send several windows of a step through one network call (the release runs
  them one after another; the fused sums are the same).

A *denoiser* maps ``(x, sigma)`` to the denoised estimate D(x; sigma) (same shape as ``x``).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: SVD-xt ``scheduler/scheduler_config.json`` (stabilityai/stable-video-diffusion-img2vid-xt:
#: v-prediction, Karras sigmas, sigma in [0.002, 700], continuous timesteps = 0.25 log sigma).
SVD_SCHEDULER_CONFIG: dict = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "use_karras_sigmas": True,
}


def make_svd_scheduler(config: dict | None = None):
    """diffusers ``EulerDiscreteScheduler`` with SVD-xt's configuration (or ``config``)."""
    from diffusers import EulerDiscreteScheduler

    return EulerDiscreteScheduler.from_config(dict(config or SVD_SCHEDULER_CONFIG))


def karras_sigmas(num_steps: int, sigma_min: float = 0.002, sigma_max: float = 700.0, rho: float = 7.0
                  ) -> torch.Tensor:
    """(num_steps + 1,) float64 decreasing noise levels ending in 0 (Karras et al. 2022, eq. 5)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    ramp = torch.linspace(0, 1, num_steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def edm_v_preconditioning(sigma: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in, c_noise) for a v-prediction network at noise level ``sigma`` (sigma_data = 1).

    D(x; sigma) = c_skip * x + c_out * F(c_in * x; c_noise) with c_skip = 1 / (sigma^2 + 1),
    c_out = -sigma / sqrt(sigma^2 + 1), c_in = 1 / sqrt(sigma^2 + 1), c_noise = 0.25 * log(sigma)
    (diffusers EulerDiscreteScheduler, v_prediction + continuous timesteps, used by SVD).
    """
    sigma = torch.as_tensor(sigma)
    s2 = sigma**2 + 1
    return 1 / s2, -sigma / s2.sqrt(), 1 / s2.sqrt(), 0.25 * sigma.log()


def v_target(clean: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The network output that makes D(x; sigma) exact for x = clean + sigma * noise: (x c_skip - clean) / -c_out."""
    c_skip, c_out, _, _ = edm_v_preconditioning(sigma)
    return (clean - c_skip * (clean + sigma * noise)) / c_out


def edm_loss_weight(sigma: torch.Tensor) -> torch.Tensor:
    """EDM loss weight lambda(sigma) = (sigma^2 + 1) / sigma^2 on the denoised error (sigma_data = 1)."""
    return (sigma**2 + 1) / sigma**2


def sample_euler(denoise: Denoiser, x: torch.Tensor, sigmas: torch.Tensor,
                 callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Euler sampler for the probability-flow ODE (Karras et al. 2022, Alg. 1, no churn).

    x: start latents already scaled to ``sigmas[0]``; ``denoise(x, sigma)`` -> D(x; sigma); ``callback(i, x,
    denoised)`` after each step. Returns the final latents at ``sigmas[-1]``.
    """
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoise(x, sigma)
        x = x + (x - denoised) / sigma * (sigma_next - sigma)
        if callback is not None:
            callback(i, x, denoised)
    return x


def three_branch_guidance(uncond: torch.Tensor, image: torch.Tensor, full: torch.Tensor,
                          image_scale: float, condition_scale: float) -> torch.Tensor:
    """uncond + s_ref (image - uncond) + s_ae (full - image) (DICE-Talk pipeline; release: s_ref 3, s_ae 6).

    The coefficients sum to 1, so it may be applied to network outputs or to denoised estimates alike;
    with both scales 1 it returns ``full``.
    """
    return uncond + image_scale * (image - uncond) + condition_scale * (full - image)


def release_window_starts(total: int, window: int, step: int, shift: int) -> list[int]:
    """First frame of each window at Euler step ``step`` (DICE-Talk / Sonic release rule).

    The release tiles the ``total`` frames (real frames plus pad frames) from ``range(0, total, window)`` and
    moves every start back by an offset that grows by ``shift`` per step modulo ``window``: offset =
    (shift * step) mod window. Starts may be negative; frame indices are taken modulo ``total``.
    """
    if window < 1 or total < 1:
        raise ValueError(f"window and total must be >= 1, got window {window}, total {total}")
    offset = (shift * step) % window
    return [s - offset for s in range(0, total, window)]


def release_windows(total: int, window: int, step: int, shift: int) -> list[torch.Tensor]:
    """(window,) int64 frame indices of each window of :func:`release_window_starts`, wrapped modulo ``total``.

    ceil(total / window) windows; when ``window`` does not divide ``total`` the last window wraps onto frames
    already covered, which are then averaged over the windows holding them. Needs total >= window (the
    sampler appends ``window`` pad frames, so any clip of at least one frame qualifies).
    """
    if total < window:
        raise ValueError(f"need at least {window} frames for {window}-frame windows, got {total}; append pad frames "
                         "before sampling")
    base = torch.arange(window)
    return [(start + base) % total for start in release_window_starts(total, window, step, shift)]


def window_groups(n_windows: int, window_batch: int) -> list[range]:
    """Consecutive groups of at most ``window_batch`` window numbers covering ``range(n_windows)`` in order."""
    if window_batch < 1:
        raise ValueError(f"window_batch must be >= 1, got {window_batch}")
    return [range(k, min(k + window_batch, n_windows)) for k in range(0, n_windows, window_batch)]


def fuse_window_batches(batch_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
                        windows: Sequence[torch.Tensor], window_batch: int = 1) -> torch.Tensor:
    """Apply ``batch_fn(x_windows, idx)`` to the windows ``window_batch`` at a time and average per frame.

    x: (B, N, ...) with frames on dim 1; ``windows``: (window,) index tensors covering every frame at least once,
    all of one length. ``batch_fn`` gets ``x_windows`` (K, B, window, ...) and ``idx`` (K, window) for K <=
    ``window_batch`` consecutive windows and returns (K, B, window, ...). Every frame's output is the mean of the
    predictions of the windows covering it (each covering window weighted equally). The predictions are summed
    window by window in the order of ``windows`` whatever ``window_batch`` is, so the fusion's floating-point sums
    are the same for every batch size: batched and unbatched outputs differ only as much as ``batch_fn``'s own
    per-window results do at different batch sizes. The release averages the latents after an Euler step of each
    window instead; the step is affine in the prediction with the same input, so both are equal.
    """
    n = x.shape[1]
    total = None
    count = torch.zeros(n, dtype=x.dtype, device=x.device)
    for group in window_groups(len(windows), window_batch):
        idx = torch.stack([windows[k] for k in group]).to(x.device)  # (K, window)
        preds = batch_fn(x[:, idx].transpose(0, 1), idx)  # x[:, idx]: (B, K, window, ...)
        if total is None:
            total = torch.zeros((x.shape[0], n, *preds.shape[3:]), dtype=preds.dtype, device=preds.device)
        for row, pred in zip(idx, preds):
            total.index_add_(1, row, pred)
            count.index_add_(0, row, torch.ones_like(row, dtype=x.dtype))
    if total is None or bool((count == 0).any()):
        raise ValueError(f"windows leave frames {torch.nonzero(count == 0).flatten().tolist()[:5]} uncovered")
    return total / count.reshape(1, n, *([1] * (total.ndim - 2))).to(total.dtype)


def fuse_windows(window_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
                 windows: Sequence[torch.Tensor]) -> torch.Tensor:
    """Apply ``window_fn(x[:, idx], idx)`` to every window ``idx`` and average per frame.

    x: (B, N, ...) with frames on dim 1; ``windows``: (window,) index tensors covering every frame at least once;
    ``window_fn`` returns (B, window, ...). One window per call: :func:`fuse_window_batches` with batch 1.
    """
    return fuse_window_batches(lambda xs, idx: window_fn(xs[0], idx[0])[None], x, windows, 1)


def batched_window_denoiser(windows_denoise: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                            sigmas: torch.Tensor, window: int = 25, shift: int = 7, window_batch: int = 1
                            ) -> Denoiser:
    """Whole-video denoiser over the windows of :func:`release_windows`, ``window_batch`` windows per call.

    ``windows_denoise(x_windows, sigma, frame_idx)`` denoises K <= ``window_batch`` windows at once: x_windows
    (K, B, window, ...), frame_idx (K, window) int64, returns (K, B, window, ...). The step number is recovered
    from ``sigma``'s position in ``sigmas``, so the returned callable plugs into :func:`sample_euler`.
    """
    levels = [float(s) for s in sigmas]

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        step = levels.index(float(sigma))
        windows = release_windows(x.shape[1], window, step, shift)
        return fuse_window_batches(lambda xs, idx: windows_denoise(xs, sigma, idx), x, windows, window_batch)

    return denoise


def shifted_window_denoiser(window_denoise: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                            sigmas: torch.Tensor, window: int = 25, shift: int = 7) -> Denoiser:
    """Whole-video denoiser over the windows of :func:`release_windows` (release: 25-frame windows, shift 7).

    ``window_denoise(x_window, sigma, frame_idx)`` denoises one window (B, window, ...) with frame_idx (window,);
    the step number is recovered from ``sigma``'s position in ``sigmas``, so the returned callable plugs into
    :func:`sample_euler`. :func:`batched_window_denoiser` with one window per call.
    """
    return batched_window_denoiser(lambda xs, sigma, idx: window_denoise(xs[0], sigma, idx[0])[None],
                                   sigmas, window, shift, 1)


def unet_calls_per_step(n_frames: int, window: int = 25, pad: int = 25, window_batch: int = 1) -> int:
    """Network calls per Euler step (the three guidance branches batched in each): ceil(W / window_batch) for
    W = ceil((N + pad) / window) windows."""
    return math.ceil(math.ceil((n_frames + pad) / window) / window_batch)


def seed_from_id(clip_id: str, base_seed: int = 0) -> int:
    """A stable 63-bit seed from a clip id (sha256), so each test clip always gets the same noise."""
    import hashlib

    digest = hashlib.sha256(f"{base_seed}:{clip_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
