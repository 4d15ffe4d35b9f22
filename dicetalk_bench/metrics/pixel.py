"""Paired pixel metrics between a generated video and its ground truth: PSNR, SSIM, LPIPS.

Inputs are frame-aligned (T, H, W, 3) uint8 RGB arrays of equal shape (the pairing rule -- clip id, frame alignment,
length/fps/size handling -- is in docs/metrics.md and applied before these functions). Per-video values are the mean
over frames of the per-frame values; set values are the mean over videos.

Pinned settings:
- PSNR: data_range 255 on uint8 RGB, MSE over all pixels and channels of one frame
  (= skimage.metrics.peak_signal_noise_ratio(data_range=255), EAT's function), capped per frame at
  ``PSNR_CAP_DB`` = 100 dB (recorded as ``cap_db`` in the PSNR protocol): identical frames would give +inf, and one
  such frame would make the video's mean and the set's mean inf. The cap changes only frames with MSE below
  255^2 * 1e-10 (about 6.5e-6; e.g. one pixel channel off by 1 in a 256 x 256 frame: 101.1 dB -> 100 dB).
- SSIM (``ssim_mode="gaussian"``, default): Wang et al. 2004 settings -- Gaussian window sigma 1.5 (11 x 11), K1 0.01,
  K2 0.03, population covariance, data_range 255, each RGB channel separately then averaged, the 5-pixel border
  of the SSIM map excluded (skimage ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=255, channel_axis=-1)``).
  ``ssim_mode="skimage-default"``: skimage's defaults (7 x 7 uniform window, sample covariance), as EAT calls it.
- LPIPS: the ``lpips`` package 0.1.4, net 'alex', version 0.1, linear heads from the wheel; the AlexNet backbone
  (torchvision ``alexnet-owt-7be5be79.pth``) is loaded from the weights registry (key ``lpips-alex``) into
  lpips' slices -- lpips is built with ``pnet_rand=True`` so torchvision never downloads. Frames scaled to [-1, 1].
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np

from dicetalk_bench.weights.random_weights import register_random_builder

__all__ = ["psnr", "ssim", "frame_psnr", "frame_ssim", "video_psnr", "video_ssim", "LpipsAlex", "load_lpips",
           "write_random_weights", "WEIGHTS_KEY"]

log = logging.getLogger(__name__)

WEIGHTS_KEY = "lpips-alex"
DATA_RANGE = 255.0
PSNR_CAP_DB = 100.0  # per-frame cap; identical frames get it instead of +inf
SsimMode = Literal["gaussian", "skimage-default"]

# lpips.pretrained_networks.alexnet puts torchvision alexnet.features[i] into slice k under the name str(i)
_ALEX_SLICES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 6: 3, 7: 3, 8: 4, 9: 4, 10: 5, 11: 5}


def _check_pair(a: np.ndarray, b: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"{what}: generated shape {a.shape} differs from reference shape {b.shape}; "
                         f"pair the videos first (docs/metrics.md, pairing rule)")
    if a.dtype != np.uint8 or b.dtype != np.uint8:
        raise ValueError(f"{what}: expected uint8 frames, got {a.dtype} and {b.dtype}")
    return a, b


def psnr(a: np.ndarray, b: np.ndarray, cap_db: float = PSNR_CAP_DB) -> float:
    """PSNR in dB of two (H, W, 3) uint8 images, data range 255, at most ``cap_db`` (identical images: ``cap_db``;
    ``cap_db=inf`` gives the uncapped value, +inf when identical)."""
    a, b = _check_pair(a, b, "psnr")
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    if mse == 0:
        return float(cap_db)
    return float(min(10.0 * np.log10(DATA_RANGE ** 2 / mse), cap_db))


def ssim(a: np.ndarray, b: np.ndarray, mode: SsimMode = "gaussian") -> float:
    """SSIM of two (H, W, 3) uint8 images with the pinned settings (module docstring)."""
    from skimage.metrics import structural_similarity

    a, b = _check_pair(a, b, "ssim")
    if mode == "gaussian":
        return float(structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                           data_range=DATA_RANGE, channel_axis=-1, K1=0.01, K2=0.03))
    if mode == "skimage-default":
        return float(structural_similarity(a, b, data_range=DATA_RANGE, channel_axis=-1))
    raise ValueError(f"unknown ssim mode {mode!r}; expected 'gaussian' or 'skimage-default'")


def frame_psnr(generated: np.ndarray, reference: np.ndarray, cap_db: float = PSNR_CAP_DB) -> np.ndarray:
    """(T, H, W, 3) uint8 pair -> (T,) float64 per-frame PSNR in dB, each capped at ``cap_db``."""
    g, r = _check_pair(generated, reference, "frame_psnr")
    return np.array([psnr(x, y, cap_db) for x, y in zip(g, r)], dtype=np.float64)


def frame_ssim(generated: np.ndarray, reference: np.ndarray, mode: SsimMode = "gaussian") -> np.ndarray:
    """(T, H, W, 3) uint8 pair -> (T,) float64 per-frame SSIM."""
    g, r = _check_pair(generated, reference, "frame_ssim")
    return np.array([ssim(x, y, mode) for x, y in zip(g, r)], dtype=np.float64)


def video_psnr(generated: np.ndarray, reference: np.ndarray, cap_db: float = PSNR_CAP_DB) -> float:
    """(T, H, W, 3) uint8 pair -> mean over frames of the per-frame PSNR, each capped at ``cap_db``."""
    return float(np.mean(frame_psnr(generated, reference, cap_db)))


def video_ssim(generated: np.ndarray, reference: np.ndarray, mode: SsimMode = "gaussian") -> float:
    """(T, H, W, 3) uint8 pair -> mean over frames of the per-frame SSIM."""
    return float(np.mean(frame_ssim(generated, reference, mode)))


def write_random_weights(target: Path, seed: int) -> None:
    """Write a random torchvision AlexNet state dict in the format of ``alexnet-owt-7be5be79.pth``."""
    import torch
    import torchvision

    from dicetalk_bench.fileutil import atomic_path

    torch.manual_seed(seed)
    model = torchvision.models.alexnet(weights=None)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        torch.save(model.state_dict(), tmp)


def _backbone_state(alexnet_state: dict) -> dict:
    """torchvision ``features.{i}.*`` keys -> lpips ``net.slice{k}.{i}.*`` keys (classifier ignored)."""
    out = {}
    for key, value in alexnet_state.items():
        if not key.startswith("features."):
            continue
        _, idx, param = key.split(".")
        out[f"net.slice{_ALEX_SLICES[int(idx)]}.{idx}.{param}"] = value
    return out


class LpipsAlex:
    """LPIPS (alex, v0.1) with a registry-loaded backbone. Call with (N, H, W, 3) uint8 RGB pairs -> (N,) distances."""

    def __init__(self, alexnet_state: dict, device: str = "cpu") -> None:
        import warnings

        import lpips
        import torch

        self.torch = torch
        # pnet_rand=True: no torchvision download; the real backbone is loaded below from the registry file.
        # lpips passes torchvision the deprecated `pretrained=False`, which only warns.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        mapped = _backbone_state(alexnet_state)
        expected = {k for k in model.state_dict() if k.startswith("net.")}
        if set(mapped) != expected:
            raise ValueError(f"AlexNet state dict does not fit LPIPS: missing {sorted(expected - set(mapped))}, "
                             f"unexpected {sorted(set(mapped) - expected)}")
        model.load_state_dict(mapped, strict=False)  # lins and scaling layer come from the lpips wheel
        self.model = model.eval().to(device)
        self.device = device

    def __call__(self, generated: np.ndarray, reference: np.ndarray, batch_size: int = 16) -> np.ndarray:
        g, r = _check_pair(generated, reference, "lpips")
        if g.ndim == 3:
            g, r = g[None], r[None]
        out = []
        with self.torch.no_grad():
            for i in range(0, len(g), batch_size):
                tg = self._to_tensor(g[i:i + batch_size])
                tr = self._to_tensor(r[i:i + batch_size])
                out.append(self.model(tg, tr).flatten().cpu().numpy())
        return np.concatenate(out).astype(np.float64)

    def _to_tensor(self, x: np.ndarray):
        t = self.torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float()
        return (t / 127.5 - 1.0).to(self.device)

    def video(self, generated: np.ndarray, reference: np.ndarray) -> float:
        """(T, H, W, 3) uint8 pair -> mean over frames."""
        return float(np.mean(self(generated, reference)))


def load_lpips(path: str | Path | None = None, *, allow_unverified: bool = False,
               device: str = "cpu") -> tuple[LpipsAlex, dict]:
    """LPIPS-alex with the backbone resolved through the weights registry; returns (metric, weights record)."""
    from dicetalk_bench import weights

    resolved = weights.resolve(WEIGHTS_KEY, path, allow_unverified=allow_unverified)
    state = weights.load_state_dict(resolved)
    try:
        metric = LpipsAlex(state, device=device)
    except ValueError as exc:
        raise weights.WeightsError(f"{resolved.path}: {exc}") from exc
    return metric, resolved.record()

register_random_builder("lpips-alex", write_random_weights)
