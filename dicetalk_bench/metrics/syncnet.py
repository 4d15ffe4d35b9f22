"""SyncNet ``S`` (Chung & Zisserman 2016), weight-compatible with joonson/syncnet_python's ``syncnet_v2.model``.

Re-written from the layer list of syncnet_python ``SyncNetModel.S(num_layers_in_fc_layers=1024)`` (MIT): the module
names (``netcnnaud``, ``netfcaud``, ``netcnnlip``, ``netfclip``) and the ``nn.Sequential`` indices are kept so the
public plain state_dict loads strictly with ``torch.load(weights_only=True)``. Reference key list:
``tests/data/syncnet_S.tsv``.

Inputs are the original's: audio (N, 1, 13, 20) MFCC windows (int16-scale MFCC, no normalisation), lips
(N, 3, 5, 224, 224) BGR float 0-255 (no mean subtraction). Outputs are 1024-d, not L2-normalised.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from dicetalk_bench.weights.random_weights import randomise_batchnorm_statistics_, register_random_builder

__all__ = ["SyncNet", "write_random_weights", "load_syncnet", "WEIGHTS_KEY", "LIP_TEMPORAL_SPAN"]

log = logging.getLogger(__name__)

WEIGHTS_KEY = "syncnet"
# Only netcnnlip.0 has a temporal kernel (5); every later temporal kernel/stride/pad is 1/1/0, so the lip CNN run on a
# whole clip gives one output per 5-frame window and chunks must overlap by LIP_TEMPORAL_SPAN - 1 frames.
LIP_TEMPORAL_SPAN = 5


def _fc(embed_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(inplace=True), nn.Linear(512, embed_dim))


class SyncNet(nn.Module):
    """syncnet_python ``S``: two streams mapping 0.2 s of audio / video to a common 1024-d space."""

    def __init__(self, embed_dim: int = 1024) -> None:
        super().__init__()
        self.netcnnaud = nn.Sequential(
            nn.Conv2d(1, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=(1, 1), stride=(1, 1)),
            nn.Conv2d(64, 192, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1)),
            nn.BatchNorm2d(192),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(1, 2)),
            nn.Conv2d(192, 384, kernel_size=(3, 3), padding=(1, 1)),
            nn.BatchNorm2d(384),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=(3, 3), padding=(1, 1)),
            nn.BatchNorm2d(256),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=(3, 3), padding=(1, 1)),
            nn.BatchNorm2d(256),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=(3, 3), stride=(2, 2)),
            nn.Conv2d(256, 512, kernel_size=(5, 4), padding=(0, 0)),
            nn.BatchNorm2d(512),
            nn.ReLU(),
        )
        self.netfcaud = _fc(embed_dim)
        self.netfclip = _fc(embed_dim)
        self.netcnnlip = nn.Sequential(
            nn.Conv3d(3, 96, kernel_size=(5, 7, 7), stride=(1, 2, 2), padding=0),
            nn.BatchNorm3d(96),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            nn.Conv3d(96, 256, kernel_size=(1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.BatchNorm3d(256),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
            nn.BatchNorm3d(256),
            nn.ReLU(inplace=True),
            nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
            nn.BatchNorm3d(256),
            nn.ReLU(inplace=True),
            nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
            nn.BatchNorm3d(256),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            nn.Conv3d(256, 512, kernel_size=(1, 6, 6), padding=0),
            nn.BatchNorm3d(512),
            nn.ReLU(inplace=True),
        )

    def forward_aud(self, mfcc_windows: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) MFCC windows -> (N, 1024)."""
        mid = self.netcnnaud(mfcc_windows)
        return self.netfcaud(mid.flatten(1))

    def forward_lip(self, lip_windows: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR 0-255 windows -> (N, 1024)."""
        mid = self.netcnnlip(lip_windows)
        return self.netfclip(mid.flatten(1))

    def lip_clip_embeddings(self, clip: torch.Tensor) -> torch.Tensor:
        """Whole clip (1, 3, T, 224, 224) -> (T - 4, 1024): one embedding per 5-frame window starting at t.

        Exact equivalent of stacking ``forward_lip(clip[:, :, t:t+5])`` (see LIP_TEMPORAL_SPAN).
        """
        if clip.ndim != 5 or clip.shape[0] != 1 or clip.shape[2] < LIP_TEMPORAL_SPAN:
            raise ValueError(f"expected a (1, 3, T>=5, 224, 224) clip, got {tuple(clip.shape)}")
        first = self.netcnnlip[0](clip)  # (1, 96, T-4, 109, 109): the only layer that mixes frames
        # later layers have temporal kernel 1: fold time into the batch so they run as the per-window batch does
        per_window = first[0].transpose(0, 1).unsqueeze(2).contiguous()  # (T-4, 96, 1, 109, 109)
        feats = self.netcnnlip[1:](per_window).flatten(1)  # (T-4, 512)
        return self.netfclip(feats)


def _randomise_(model: SyncNet, seed: int) -> None:
    """Deterministic random parameters and BN statistics so that eval-mode outputs are non-trivial."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif name.endswith("weight"):  # BN gamma
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
    randomise_batchnorm_statistics_(model, gen)


def write_random_weights(target: Path, seed: int) -> None:
    """Write a random ``syncnet_v2.model``-format file (plain state_dict, torch.save) to ``target``.

    Registered as the random builder of ``syncnet`` (``weights.register_random_builder``).
    """
    from dicetalk_bench.fileutil import atomic_path

    torch.manual_seed(seed)
    model = SyncNet()
    _randomise_(model, seed)
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        torch.save(model.state_dict(), tmp)


def load_syncnet(path: str | Path | None = None, *, allow_unverified: bool = False,
                 device: str | torch.device = "cpu") -> tuple[SyncNet, dict]:
    """Build ``SyncNet`` and load ``syncnet_v2.model`` strictly through the weights registry.

    Returns ``(model in eval mode, weights record {"key","file","sha256","calibrated"})``.
    """
    from dicetalk_bench import weights

    resolved = weights.resolve(WEIGHTS_KEY, path, allow_unverified=allow_unverified)
    state = weights.load_state_dict(resolved)
    model = SyncNet()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise weights.WeightsError(
            f"{resolved.path}: not a syncnet_python S state_dict (syncnet_v2.model layout): {exc}") from exc
    model.eval().to(device)
    return model, resolved.record()

register_random_builder("syncnet", write_random_weights)
