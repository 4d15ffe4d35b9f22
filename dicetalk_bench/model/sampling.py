"""Sampling maths as pure functions over denoiser callables (k-diffusion style; DICE-Talk).

- SVD's noise schedule: EDM (Karras et al. 2022) sigmas with v-prediction preconditioning, as diffusers'
  ``EulerDiscreteScheduler`` configured by SVD-xt's ``scheduler_config.json`` (:data:`SVD_SCHEDULER_CONFIG`);
- :func:`sample_euler`: Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 1 without churn);
- :func:`three_branch_guidance`: classifier-free guidance over uncond / image-only / full predictions;
- :func:`release_windows` / :func:`fuse_windows`: time-aware position-shift fusion as the DICE-Talk release runs it
  (from Sonic): the video plus 25 pad frames is denoised as 25-frame windows whose tiling moves back by 7 frames
  per step modulo 25, wrapping around, predictions averaged per frame.

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


def fuse_windows(window_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor,
                 windows: Sequence[torch.Tensor]) -> torch.Tensor:
    """Apply ``window_fn(x[:, idx], idx)`` to every window ``idx`` and average per frame.

    x: (B, N, ...) with frames on dim 1; ``windows``: (window,) index tensors covering every frame at least once;
    ``window_fn`` returns (B, window, ...). Every frame's output is the mean of the predictions of the windows
    covering it (each covering window weighted equally). The release averages the latents after an Euler step of
    each window instead; the step is affine in the prediction with the same input, so both are equal.
    """
    n = x.shape[1]
    total = None
    count = torch.zeros(n, dtype=x.dtype, device=x.device)
    for idx in windows:
        idx = idx.to(x.device)
        pred = window_fn(x[:, idx], idx)
        if total is None:
            total = torch.zeros((x.shape[0], n, *pred.shape[2:]), dtype=pred.dtype, device=pred.device)
        total.index_add_(1, idx, pred)
        count.index_add_(0, idx, torch.ones_like(idx, dtype=x.dtype))
    if total is None or bool((count == 0).any()):
        raise ValueError(f"windows leave frames {torch.nonzero(count == 0).flatten().tolist()[:5]} uncovered")
    return total / count.reshape(1, n, *([1] * (total.ndim - 2))).to(total.dtype)


def shifted_window_denoiser(window_denoise: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
                            sigmas: torch.Tensor, window: int = 25, shift: int = 7) -> Denoiser:
    """Whole-video denoiser over the windows of :func:`release_windows` (release: 25-frame windows, shift 7).

    ``window_denoise(x_window, sigma, frame_idx)`` denoises one window; the step number is recovered from
    ``sigma``'s position in ``sigmas``, so the returned callable plugs into :func:`sample_euler`.
    """
    levels = [float(s) for s in sigmas]

    def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        step = levels.index(float(sigma))
        windows = release_windows(x.shape[1], window, step, shift)
        return fuse_windows(lambda xw, idx: window_denoise(xw, sigma, idx), x, windows)

    return denoise


def unet_calls_per_step(n_frames: int, window: int = 25, pad: int = 25) -> int:
    """Windows (UNet calls, the three guidance branches batched in one) per Euler step: ceil((N + pad) / window)."""
    return math.ceil((n_frames + pad) / window)


def seed_from_id(clip_id: str, base_seed: int = 0) -> int:
    """A stable 63-bit seed from a clip id (sha256), so each test clip always gets the same noise."""
    import hashlib

    digest = hashlib.sha256(f"{base_seed}:{clip_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
