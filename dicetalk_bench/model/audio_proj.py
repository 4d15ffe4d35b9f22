"""AudioProjModel: per-frame Whisper window -> condition tokens (DICE-Talk / Sonic ``audio_proj.py``).

Paper size: (10 Whisper frames x 5 hidden states x 384) = 19200 -> Linear+ReLU 1024 -> Linear+ReLU 1024 ->
Linear 32 x 1024 -> LayerNorm(1024): 32 audio tokens of 1024-d per generated frame. The same class, with
seq_len = blocks = 1, is the emotion model's ``emo_linear`` and ``kv_tokens_linear``. Parameter names
(``proj1``, ``proj2``, ``proj3``, ``norm``) equal the release checkpoint ``audio_linear.pth``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class AudioProjModel(nn.Module):
    """(..., seq_len, blocks, channels) -> (..., context_tokens, output_dim); any leading dims (B, F, ...)."""

    def __init__(self, seq_len: int = 10, blocks: int = 5, channels: int = 384, intermediate_dim: int = 1024,
                 output_dim: int = 1024, context_tokens: int = 32):
        super().__init__()
        self.seq_len, self.blocks, self.channels = seq_len, blocks, channels
        self.context_tokens, self.output_dim = context_tokens, output_dim
        self.proj1 = nn.Linear(seq_len * blocks * channels, intermediate_dim)
        self.proj2 = nn.Linear(intermediate_dim, intermediate_dim)
        self.proj3 = nn.Linear(intermediate_dim, context_tokens * output_dim)
        self.norm = nn.LayerNorm(output_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        expected = (self.seq_len, self.blocks, self.channels)
        if features.ndim < 3 or tuple(features.shape[-3:]) != expected:
            raise ValueError(f"AudioProjModel expects (..., {expected[0]}, {expected[1]}, {expected[2]}), "
                             f"got {tuple(features.shape)}")
        lead = features.shape[:-3]
        x = features.reshape(-1, self.seq_len * self.blocks * self.channels)
        x = F.relu(self.proj1(x))
        x = F.relu(self.proj2(x))
        x = self.proj3(x).reshape(-1, self.context_tokens, self.output_dim)
        return self.norm(x).reshape(*lead, self.context_tokens, self.output_dim)
