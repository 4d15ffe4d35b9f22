"""PoseGuider: face-region mask image -> features added to the UNet's ``conv_in`` output (DICE-Talk release).

Official module: ``src/models/audio_adapter/pose_guider.py`` with ``conditioning_embedding_channels=320,
block_out_channels=(16, 32, 96, 256)``. Its 3-D "inflated" convolutions apply one 2-D kernel to every frame, so
this module is 2-D and folds frames into the batch. Parameter names (``conv_in``, ``blocks.0-5``, ``conv_out``)
equal the release checkpoint ``pose_guider.pth``.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class PoseGuider(nn.Module):
    """Mask (B, F, 3, H, W) in [0, 1] -> (B, F, C_out, H / 2^k, W / 2^k), k = len(block_out_channels) - 1.

    Each transition between ``block_out_channels`` is a 3x3 conv then a stride-2 3x3 conv, SiLU after each;
    ``conv_out`` is zero-initialised so a fresh guider leaves the UNet unchanged (ControlNet practice).
    """

    def __init__(self, conditioning_embedding_channels: int, conditioning_channels: int = 3,
                 block_out_channels: Sequence[int] = (16, 32, 96, 256)):
        super().__init__()
        chans = tuple(block_out_channels)
        self.conv_in = nn.Conv2d(conditioning_channels, chans[0], kernel_size=3, padding=1)
        self.blocks = nn.ModuleList()
        for c_in, c_out in zip(chans[:-1], chans[1:]):
            self.blocks.append(nn.Conv2d(c_in, c_in, kernel_size=3, padding=1))
            self.blocks.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, stride=2))
        self.conv_out = nn.Conv2d(chans[-1], conditioning_embedding_channels, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, mask: torch.Tensor) -> torch.Tensor:
        if mask.ndim != 5:
            raise ValueError(f"PoseGuider expects (B, F, C, H, W), got shape {tuple(mask.shape)}")
        b, f = mask.shape[:2]
        x = F.silu(self.conv_in(mask.flatten(0, 1)))
        for block in self.blocks:
            x = F.silu(block(x))
        x = self.conv_out(x)
        return x.reshape(b, f, *x.shape[1:])
