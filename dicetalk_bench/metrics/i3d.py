"""I3D (Carreira & Zisserman 2017) for FVD, in the parameter layout of ``i3d_pretrained_400.pt``.

Re-written from the architecture facts of piergiaj/pytorch-i3d ``InceptionI3d(400, in_channels=3)`` (the layout
cd-fvd, DisCo and VideoGPT-style FVD load): module names, channel counts, "same" padding computed
from the input size as TF does, Mixed_5c -> AvgPool3d([2, 7, 7], stride 1) -> 1x1x1 logits conv -> squeeze -> mean
over time = 400 Kinetics logits per clip (the FVD embedding, like TF FVD's ``RGB/inception_i3d/Mean:0``). Reference
key list: tests/data/i3d_InceptionI3d_400.tsv (344 entries).

BatchNorm epsilon (``bn_eps``, one value for all 57 BatchNorm3d layers): :data:`DEFAULT_BN_EPS` = 1e-5 is the value of
the PyTorch model that converted the tf.hub weights into ``i3d_pretrained_400.pt`` (songweige/TATS
``tats/fvd/convert_tf_pretrained.py`` with wilson1yan/VideoGPT ``videogpt/fvd/pytorch_i3d.py``) and of the
implementations that load that file for published FVDs (VideoGPT, TATS, cd-fvd, common_metrics_on_video_quality's
``videogpt`` mode). The TF model itself (Sonnet BatchNorm) and piergiaj/pytorch-i3d (and DisCo's copy) use 1e-3; on
identical inputs the two give different features and FVDs, so the value is part of the FVD protocol.

Input: (B, 3, T, H, W) float in [-1, 1]. The 7x7 spatial average pool needs H, W >= 193 (224 in the protocol); the
temporal pool of 2 needs T >= 9 after three stride-2 stages (16 in the protocol).

The optional TorchScript backend (StyleGAN-V's ``i3d_torchscript.pt``, weights key ``i3d-torchscript``) is loaded
through :func:`dicetalk_bench.weights.load_torchscript` after its hash check and called with
``rescale=False, resize=False, return_features=True`` on the same preprocessed input.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from dicetalk_bench.weights.random_weights import randomise_conv_bn_, register_random_builder

logger = logging.getLogger(__name__)

WEIGHTS_KEY = "i3d-400"
TORCHSCRIPT_KEY = "i3d-torchscript"
NUM_CLASSES = 400
FEATURE_DIM = 400
MIN_FRAMES = 9    # ceil(ceil(ceil(T/2)/2)/2) >= 2 for the final AvgPool3d kernel of 2 frames
MIN_SIZE = 193    # five stride-2 stages to >= 7 for the final 7x7 average pool
DEFAULT_BN_EPS = 1e-5  # the converter of i3d_pretrained_400.pt, VideoGPT, TATS, cd-fvd (module docstring)
TF_BN_EPS = 1e-3       # Sonnet BatchNorm in the tf.hub model; piergiaj/pytorch-i3d

Backend = Literal["i3d-400", "i3d-torchscript"]


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'SAME' padding (front, back) for one dimension, as pytorch-i3d computes it from the input size."""
    if size % stride == 0:
        pad = max(kernel - stride, 0)
    else:
        pad = max(kernel - (size % stride), 0)
    return pad // 2, pad - pad // 2


def _pad_same(x: torch.Tensor, kernel: Sequence[int], stride: Sequence[int]) -> torch.Tensor:
    _, _, t, h, w = x.shape
    pt, ph, pw = (_same_pad(s, k, st) for s, k, st in zip((t, h, w), kernel, stride))
    return F.pad(x, (*pw, *ph, *pt))


class MaxPool3dSame(nn.MaxPool3d):
    """MaxPool3d with TF 'SAME' zero padding (pytorch-i3d MaxPool3dSamePadding)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(_pad_same(x, self.kernel_size, self.stride))


class Unit3D(nn.Module):
    """Conv3d ('SAME' padding, no bias) + BatchNorm3d(eps ``bn_eps``) + ReLU; the logits unit has bias, no BN, no
    ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Sequence[int] = (1, 1, 1),
                 stride: Sequence[int] = (1, 1, 1), *, use_bn: bool = True, use_bias: bool = False,
                 activation: bool = True, bn_eps: float = DEFAULT_BN_EPS) -> None:
        super().__init__()
        self.kernel = tuple(kernel)
        self.stride = tuple(stride)
        self.activation = activation
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=0, bias=use_bias)
        # eval mode only uses eps and the running statistics; momentum is irrelevant for feature extraction
        self.bn = nn.BatchNorm3d(out_channels, eps=bn_eps) if use_bn else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class InceptionModule(nn.Module):
    """Four branches: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; maxpool 3x3x3 -> 1x1; concatenated on channels."""

    def __init__(self, in_channels: int, out: Sequence[int], bn_eps: float = DEFAULT_BN_EPS) -> None:
        super().__init__()
        self.b0 = Unit3D(in_channels, out[0], bn_eps=bn_eps)
        self.b1a = Unit3D(in_channels, out[1], bn_eps=bn_eps)
        self.b1b = Unit3D(out[1], out[2], (3, 3, 3), bn_eps=bn_eps)
        self.b2a = Unit3D(in_channels, out[3], bn_eps=bn_eps)
        self.b2b = Unit3D(out[3], out[4], (3, 3, 3), bn_eps=bn_eps)
        self.b3a = MaxPool3dSame(kernel_size=(3, 3, 3), stride=(1, 1, 1), padding=0)
        self.b3b = Unit3D(in_channels, out[5], bn_eps=bn_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


# (name, in_channels, [b0, b1a, b1b, b2a, b2b, b3b]) -- pytorch-i3d InceptionI3d end points
_MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


class InceptionI3d(nn.Module):
    """(B, 3, T, H, W) float in [-1, 1] -> (B, 400) Kinetics-400 logits averaged over time.

    :meth:`logits_over_time` gives the (B, 400, T') tensor before the temporal mean. ``bn_eps`` is the epsilon of
    every BatchNorm3d layer (module docstring).
    """

    def __init__(self, num_classes: int = NUM_CLASSES, in_channels: int = 3, bn_eps: float = DEFAULT_BN_EPS) -> None:
        super().__init__()
        check_bn_eps(bn_eps)
        self.bn_eps = float(bn_eps)
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2), bn_eps=bn_eps)
        self.MaxPool3d_2a_3x3 = MaxPool3dSame(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=0)
        self.Conv3d_2b_1x1 = Unit3D(64, 64, bn_eps=bn_eps)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3), bn_eps=bn_eps)
        self.MaxPool3d_3a_3x3 = MaxPool3dSame(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=0)
        self.Mixed_3b = InceptionModule(*_MIXED["Mixed_3b"], bn_eps=bn_eps)
        self.Mixed_3c = InceptionModule(*_MIXED["Mixed_3c"], bn_eps=bn_eps)
        self.MaxPool3d_4a_3x3 = MaxPool3dSame(kernel_size=(3, 3, 3), stride=(2, 2, 2), padding=0)
        self.Mixed_4b = InceptionModule(*_MIXED["Mixed_4b"], bn_eps=bn_eps)
        self.Mixed_4c = InceptionModule(*_MIXED["Mixed_4c"], bn_eps=bn_eps)
        self.Mixed_4d = InceptionModule(*_MIXED["Mixed_4d"], bn_eps=bn_eps)
        self.Mixed_4e = InceptionModule(*_MIXED["Mixed_4e"], bn_eps=bn_eps)
        self.Mixed_4f = InceptionModule(*_MIXED["Mixed_4f"], bn_eps=bn_eps)
        self.MaxPool3d_5a_2x2 = MaxPool3dSame(kernel_size=(2, 2, 2), stride=(2, 2, 2), padding=0)
        self.Mixed_5b = InceptionModule(*_MIXED["Mixed_5b"], bn_eps=bn_eps)
        self.Mixed_5c = InceptionModule(*_MIXED["Mixed_5c"], bn_eps=bn_eps)
        self.avg_pool = nn.AvgPool3d(kernel_size=(2, 7, 7), stride=(1, 1, 1))
        self.dropout = nn.Dropout(0.5)
        self.logits = Unit3D(384 + 384 + 128 + 128, num_classes, use_bn=False, use_bias=True, activation=False)

    _END_POINTS = ("Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
                   "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
                   "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c")

    def logits_over_time(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) -> (B, 400, T') logits per temporal position."""
        check_clip_shape(x.shape)
        for name in self._END_POINTS:
            x = getattr(self, name)(x)
        x = self.logits(self.dropout(self.avg_pool(x)))
        return x.squeeze(4).squeeze(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits_over_time(x).mean(dim=2)


def check_bn_eps(bn_eps: float) -> None:
    """Raise ValueError unless ``bn_eps`` is a finite number > 0."""
    if isinstance(bn_eps, bool) or not isinstance(bn_eps, (int, float)) or not math.isfinite(bn_eps) or bn_eps <= 0:
        raise ValueError(f"I3D BatchNorm eps {bn_eps!r}: expected a finite number > 0 (1e-5: the converter of "
                         f"i3d_pretrained_400.pt, VideoGPT, cd-fvd; 1e-3: the TF model, piergiaj/pytorch-i3d)")


def check_clip_shape(shape: Sequence[int]) -> None:
    """Raise ValueError unless ``shape`` is (B, 3, T >= 9, H >= 193, W >= 193)."""
    if len(shape) != 5 or shape[1] != 3:
        raise ValueError(f"I3D expects clips (B, 3, T, H, W), got shape {tuple(shape)}")
    _, _, t, h, w = shape
    if t < MIN_FRAMES:
        raise ValueError(f"I3D needs clips of at least {MIN_FRAMES} frames (three temporal stride-2 stages, then a "
                         f"2-frame average pool), got T={t}")
    if h < MIN_SIZE or w < MIN_SIZE:
        raise ValueError(f"I3D needs frames of at least {MIN_SIZE}x{MIN_SIZE} (final 7x7 average pool), got {h}x{w};"
                         f" resize to 224 first")


def write_random_weights(target: Path, seed: int) -> None:
    """Random weights in the format of ``i3d_pretrained_400.pt``: a plain state dict (torch.save) with exactly the
    344 names and shapes of pytorch-i3d's InceptionI3d(400); BatchNorm statistics randomised mildly."""
    from dicetalk_bench.fileutil import atomic_path

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = InceptionI3d()
        randomise_conv_bn_(model)
        state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(Path(target), suffix=".pt") as tmp:
        torch.save(state, tmp)


class TorchScriptI3D(nn.Module):
    """Wraps StyleGAN-V's TorchScript I3D: (B, 3, T, H, W) in [-1, 1] at 224 -> (B, 400) logits (features)."""

    def __init__(self, scripted: torch.nn.Module) -> None:
        super().__init__()
        self.scripted = scripted

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_clip_shape(x.shape)
        # stylegan-v frechet_video_distance.py detector_kwargs, with rescale/resize done by our pinned protocol
        return self.scripted(x, rescale=False, resize=False, return_features=True)


def load_i3d(backend: Backend = "i3d-400", weights_path: str | Path | None = None, *,
             allow_unverified: bool = False, device: str = "cpu",
             bn_eps: float = DEFAULT_BN_EPS) -> tuple[nn.Module, dict]:
    """Resolve the backend's weights through the registry and build the model (eval mode).

    Returns ``(model, record)``; ``record`` is :meth:`ResolvedWeights.record` plus the backend name.
    ``i3d-400`` loads strictly with ``weights_only=True`` into an :class:`InceptionI3d` whose BatchNorm layers use
    ``bn_eps``; ``i3d-torchscript`` via ``weights.load_torchscript`` (its epsilon is fixed inside the file, so
    ``bn_eps`` does not apply to it).
    """
    from dicetalk_bench import weights

    if backend == "i3d-400":
        check_bn_eps(bn_eps)
        resolved = weights.resolve(WEIGHTS_KEY, weights_path, allow_unverified=allow_unverified)
        state = weights.load_state_dict(resolved)
        model: nn.Module = InceptionI3d(bn_eps=bn_eps)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{resolved.path}: not an i3d_pretrained_400.pt state dict ({len(missing)} missing "
                             f"keys, e.g. {list(missing)[:3]}; {len(unexpected)} unexpected, e.g. "
                             f"{list(unexpected)[:3]})")
    elif backend == "i3d-torchscript":
        resolved = weights.resolve(TORCHSCRIPT_KEY, weights_path, allow_unverified=allow_unverified)
        model = TorchScriptI3D(weights.load_torchscript(resolved, map_location=device))
    else:
        raise ValueError(f"unknown I3D backend {backend!r}; expected 'i3d-400' or 'i3d-torchscript'")
    model = model.to(device).eval()
    return model, resolved.record() | {"backend": backend}


def temporal_output_length(t: int) -> int:
    """Number of time steps of :meth:`InceptionI3d.logits_over_time` for a T-frame clip (three SAME stride-2
    stages, then a valid 2-frame pool)."""
    for _ in range(3):
        t = math.ceil(t / 2)
    return t - 1

register_random_builder("i3d-400", write_random_weights)
