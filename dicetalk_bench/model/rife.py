"""RIFE HDv3 frame interpolation, weight-compatible with the ``flownet.pkl`` the DICE-Talk release runs.

RIFE (Huang et al., "Real-Time Intermediate Flow Estimation for Video Frame Interpolation", ECCV 2022;
github.com/hzwer/Practical-RIFE, MIT licence) estimates, for two frames I0 and I1, the flows from the middle
frame to each of them and a blending mask, coarse to fine over three scales (4, 2, 1), and blends the two
backward-warped frames. The DICE-Talk release generates at 12.5 fps and calls it once per pair of consecutive
frames to write 25 fps.

Structure (the parameter names equal the release file's keys once its ``module.`` prefix is stripped):
``IFNet`` = ``block0..2`` (input 3 + 3 + 1 image/mask channels + 4 flow channels) and ``block_tea`` (the
training-time teacher, 10 + 4 channels, present in the file and unused here); every block has c = 90 channels.

Images are (B, 3, H, W) float in [0, 1]; flows are in pixels, channels (dx, dy) of I0 then (dx, dy) of I1.
"""

from __future__ import annotations

import os
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from dicetalk_bench.weights.random_weights import register_random_builder

#: IFBlock width of the HDv3 release network.
RIFE_CHANNELS = 90
#: Coarse-to-fine scales of the three blocks at inference scale 1 (the release's default).
RIFE_SCALES = (4.0, 2.0, 1.0)


def _conv_prelu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution with bias followed by a per-channel PReLU (keys ``.0.weight/.0.bias`` and ``.1.weight``)."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=True), nn.PReLU(c_out))


def _upsampling_head(c: int, c_out: int) -> nn.Sequential:
    """Two stride-2 transposed 4x4 convolutions with a PReLU between: (c, h, w) -> (c_out, 4h, 4w)."""
    return nn.Sequential(nn.ConvTranspose2d(c, c // 2, 4, 2, 1), nn.PReLU(c // 2), nn.ConvTranspose2d(c // 2, c_out, 4, 2, 1))


class IFBlock(nn.Module):
    """One scale of the flow estimator: inputs resized by 1/scale, 1/16 feature resolution, flow and mask heads."""

    def __init__(self, in_channels: int, c: int = RIFE_CHANNELS):
        super().__init__()
        self.conv0 = nn.Sequential(_conv_prelu(in_channels, c // 2, 2), _conv_prelu(c // 2, c, 2))
        for k in range(4):
            self.add_module(f"convblock{k}", nn.Sequential(_conv_prelu(c, c), _conv_prelu(c, c)))
        self.conv1 = _upsampling_head(c, 4)  # flow update (4 channels)
        self.conv2 = _upsampling_head(c, 1)  # mask update (1 channel, a logit)

    def forward(self, x: torch.Tensor, flow: torch.Tensor, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, C, H, W) images and mask; flow: (B, 4, H, W) pixels -> flow and mask updates at (H, W)."""
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
        feat = self.conv0(torch.cat([x, flow], 1))
        for k in range(4):
            feat = getattr(self, f"convblock{k}")(feat) + feat
        d_flow = F.interpolate(self.conv1(feat), scale_factor=scale, mode="bilinear", align_corners=False) * scale
        d_mask = F.interpolate(self.conv2(feat), scale_factor=scale, mode="bilinear", align_corners=False)
        return d_flow, d_mask


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (B, C, H, W) at each pixel plus ``flow`` (B, 2, H, W) in pixels (dx, dy).

    Output pixel (y, x) = image at (y + dy, x + dx), bilinear, coordinates outside clamped to the border
    (``grid_sample`` with align_corners=True, so pixel centres map to [-1, 1] with step 2 / (size - 1)).
    """
    b, _, h, w = flow.shape
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=flow.dtype)
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=flow.dtype)
    base = torch.stack([xs.view(1, w).expand(h, w), ys.view(h, 1).expand(h, w)], dim=-1)  # (H, W, 2) as (x, y)
    norm = torch.stack([flow[:, 0] / ((image.shape[3] - 1.0) / 2.0), flow[:, 1] / ((image.shape[2] - 1.0) / 2.0)], -1)
    return F.grid_sample(image, base[None] + norm, mode="bilinear", padding_mode="border", align_corners=True)


class IFNet(nn.Module):
    """RIFE HDv3 flow network; :meth:`forward` returns the middle frame of two frames."""

    def __init__(self, c: int = RIFE_CHANNELS):
        super().__init__()
        self.block0 = IFBlock(7 + 4, c)
        self.block1 = IFBlock(7 + 4, c)
        self.block2 = IFBlock(7 + 4, c)
        self.block_tea = IFBlock(10 + 4, c)  # teacher of RIFE training, kept for weight compatibility

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, scales: tuple[float, ...] = RIFE_SCALES
                ) -> torch.Tensor:
        """img0, img1: (B, 3, H, W) in [0, 1], H and W multiples of 16 -> (B, 3, H, W) middle frame.

        Each block sees both orderings, (warped I0, warped I1, mask) with the flow and (warped I1, warped I0,
        -mask) with the flow halves swapped; the updates are the means of the two (second swapped back, its mask
        negated). The result blends the warped frames with sigmoid(mask) on I0: with zero flow and a zero mask
        it is the average of the two frames.
        """
        b, _, h, w = img0.shape
        flow = img0.new_zeros(b, 4, h, w)
        mask = img0.new_zeros(b, 1, h, w)
        warped0, warped1 = img0, img1
        for block, scale in zip((self.block0, self.block1, self.block2), scales):
            f0, m0 = block(torch.cat([warped0, warped1, mask], 1), flow, scale)
            f1, m1 = block(torch.cat([warped1, warped0, -mask], 1), torch.cat([flow[:, 2:], flow[:, :2]], 1), scale)
            flow = flow + (f0 + torch.cat([f1[:, 2:], f1[:, :2]], 1)) / 2
            mask = mask + (m0 - m1) / 2
            warped0 = backward_warp(img0, flow[:, :2])
            warped1 = backward_warp(img1, flow[:, 2:])
        weight = torch.sigmoid(mask)
        return warped0 * weight + warped1 * (1 - weight)


def _pad_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


@torch.no_grad()
def interpolate_frames(net: IFNet, frames: torch.Tensor, batch: int = 8) -> torch.Tensor:
    """Double the frame rate: (n, 3, H, W) in [0, 1] -> (2n - 1, 3, H, W): I_0, mid_0, I_1, ..., mid_{n-2}, I_{n-1}.

    The originals are returned unchanged; each middle frame is ``net(I_k, I_{k+1})`` clamped to [0, 1] (release
    ``dice_talk.py``). Sizes that are not multiples of 16 are padded by edge replication for the network and
    cropped back (the release's sizes, multiples of 64, need no padding). ``batch`` pairs are run at a time.
    """
    n, _, h, w = frames.shape
    if n < 2:
        return frames.clone()
    dtype = next(net.parameters()).dtype
    x = _pad_multiple(frames.to(dtype), 16)
    mids = []
    for i in range(0, n - 1, batch):
        j = min(i + batch, n - 1)
        mids.append(net(x[i:j], x[i + 1:j + 1])[..., :h, :w].clamp(0, 1).to(frames.dtype))
    mid = torch.cat(mids)
    out = frames.new_empty((2 * n - 1, *frames.shape[1:]))
    out[0::2] = frames
    out[1::2] = mid
    return out


def strip_module_prefix(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``module.block0...`` -> ``block0...`` (the release file was saved from a DataParallel wrapper)."""
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in state.items()}


def load_rife(path: str | os.PathLike | None = None, *, allow_unverified: bool = False,
              device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> tuple[IFNet, dict]:
    """IFNet with the ``flownet.pkl`` weights resolved through the weights registry (key ``rife-hdv3``; ``path``
    a file or a folder holding it, else the registry's places), read with ``torch.load(weights_only=True)`` and
    loaded strictly after stripping ``module.``. Returns the network and the weights record (key, file, sha256,
    calibrated). Raises ValueError naming the file when its keys or shapes differ from the HDv3 network."""
    from pathlib import Path

    from dicetalk_bench import weights

    if path is not None and Path(path).is_dir():
        path = Path(path) / "flownet.pkl"
    resolved = weights.resolve("rife-hdv3", path, allow_unverified=allow_unverified)
    state = weights.load_state_dict(resolved)
    net = IFNet()
    try:
        net.load_state_dict(strip_module_prefix(state), strict=True)
    except RuntimeError as exc:
        raise ValueError(f"{resolved.path}: not the RIFE HDv3 IFNet the release uses "
                         f"({str(exc).splitlines()[0]}); expected the release's RIFE/flownet.pkl") from None
    return net.to(device=device, dtype=dtype).eval().requires_grad_(False), resolved.record()


def write_random_rife(target: str | os.PathLike, seed: int) -> None:
    """Random HDv3 weights saved as the release's file: a ``module.``-prefixed state dict at ``target``
    (the registry's random builder; tests load it through :func:`load_rife`)."""
    from pathlib import Path

    from dicetalk_bench.fileutil import atomic_path

    torch.manual_seed(seed)
    net = IFNet()
    state = {f"module.{k}": v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(Path(target)) as tmp:
        torch.save(state, tmp)

register_random_builder("rife-hdv3", write_random_rife)
