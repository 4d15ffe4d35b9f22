"""IP-Adapter-style decoupled cross-attention for every ``attn2`` of the SVD UNet (DICE-Talk release).

One processor per cross-attention layer computes (Ye et al. 2023, IP-Adapter; DICE-Talk
``attention_processor.py`` ``IPAdapterAttnProcessor2_0``)::

    h = Attn(q, K(clip), V(clip)) + sum_i scale_i * mask_i * Attn(q, K_ip_i(tokens_i), V_ip_i(tokens_i))

with branch 0 = audio tokens and branch 1 = emotion tokens. ``to_k_ip[i]`` / ``to_v_ip[i]`` are bias-free
``Linear(cross_attention_dim -> inner_dim)`` layers initialised as copies of the layer's own ``to_k`` / ``to_v``;
their parameter names (``...attn2.processor.to_k_ip.0.weight``) equal the official checkpoint keys because the
processor is an ``nn.Module`` registered on the ``Attention`` module under the name ``processor``.

The processor receives its inputs as one :class:`CrossAttnContext` passed as ``encoder_hidden_states`` (diffusers'
transformer blocks hand that argument through untouched), so the masks travel with the call instead of living in
mutable state: safe under gradient checkpointing, which re-runs forwards during the backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class CrossAttnContext:
    """Inputs of one cross-attention call.

    clip: (N_ctx, L, D) main context tokens (SVD's CLIP image embedding, L = 1).
    ip_tokens: per branch, (N_ctx, T_i, D) tokens (32 audio tokens, 32 emotion tokens at paper size).
    ip_masks: per branch, (N_q, Q) weights in [0, 1] over the query positions, or None (no masking).
    N_q, the query batch, must be a multiple of N_ctx: keys and values are projected once per context row and
    repeated ``N_q // N_ctx`` times (consecutive query rows share a context row), which saves the projection of
    the same clip-averaged tokens for every spatial position in the temporal blocks.
    """

    clip: torch.Tensor
    ip_tokens: tuple[torch.Tensor, ...] = ()
    ip_masks: tuple[torch.Tensor | None, ...] | None = None


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(N, L, H*d) -> (N, H, L, d)."""
    n, length, dim = x.shape
    return x.view(n, length, n_heads, dim // n_heads).transpose(1, 2)


def _repeat_rows(x: torch.Tensor, n_rows: int) -> torch.Tensor:
    """Repeat each row of (N_ctx, ...) ``n_rows // N_ctx`` times -> (n_rows, ...)."""
    if x.shape[0] == n_rows:
        return x
    if n_rows % x.shape[0]:
        raise ValueError(f"query batch {n_rows} is not a multiple of the context batch {x.shape[0]}")
    return x.repeat_interleave(n_rows // x.shape[0], dim=0)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Multi-head softmax(Q K^T / sqrt(d)) V. q: (N, Lq, C); k, v: (N_ctx, Lk, C) -> (N, Lq, C)."""
    n = q.shape[0]
    k = _repeat_rows(k, n)
    v = _repeat_rows(v, n)
    out = F.scaled_dot_product_attention(_heads(q, n_heads), _heads(k, n_heads), _heads(v, n_heads))
    return out.transpose(1, 2).reshape(n, q.shape[1], q.shape[2])


class DecoupledCrossAttnProcessor(nn.Module):
    """Cross-attention with ``len(num_tokens)`` extra decoupled K/V branches (the DICE-Talk IP adapters).

    Args:
        cross_attention_dim: width D of the condition tokens (1024 at paper size).
        inner_dim: the layer's attention width (``attn.to_k.out_features``).
        num_tokens: tokens per branch, e.g. (32, 32); checked against the inputs.
        scales: output weight of each branch (``ip_audio_scale``, ``ip_emo_scale``).
    """

    def __init__(self, cross_attention_dim: int, inner_dim: int, num_tokens: Sequence[int], scales: Sequence[float]):
        super().__init__()
        if len(num_tokens) != len(scales):
            raise ValueError(f"num_tokens {tuple(num_tokens)} and scales {tuple(scales)} differ in length")
        self.num_tokens = tuple(int(t) for t in num_tokens)
        self.scales = tuple(float(s) for s in scales)
        self.to_k_ip = nn.ModuleList(
            nn.Linear(cross_attention_dim, inner_dim, bias=False) for _ in self.num_tokens
        )
        self.to_v_ip = nn.ModuleList(
            nn.Linear(cross_attention_dim, inner_dim, bias=False) for _ in self.num_tokens
        )

    @torch.no_grad()
    def init_from_attention(self, attn: nn.Module) -> None:
        """Copy the layer's ``to_k`` / ``to_v`` weights into every branch (official ``add_ip_adapters``)."""
        for k_ip, v_ip in zip(self.to_k_ip, self.to_v_ip):
            k_ip.weight.copy_(attn.to_k.weight)
            v_ip.weight.copy_(attn.to_v.weight)

    def __call__(self, attn: nn.Module, hidden_states: torch.Tensor, encoder_hidden_states=None,
                 attention_mask=None, **kwargs) -> torch.Tensor:
        # diffusers' Attention.forward calls ``processor(attn, hidden_states, ...)``; route through nn.Module
        # __call__ so hooks (e.g. FSDP, DDP) see the processor.
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask)

    def forward(self, attn: nn.Module, hidden_states: torch.Tensor, context: CrossAttnContext | torch.Tensor,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """hidden_states: (N_q, Q, C) query tokens; returns (N_q, Q, C)."""
        if attention_mask is not None:
            raise ValueError("DecoupledCrossAttnProcessor does not support attention_mask")
        if not isinstance(context, CrossAttnContext):
            context = CrossAttnContext(clip=context)  # plain tensor: behaves as the stock processor
        heads = attn.heads
        q = attn.to_q(hidden_states)
        out = attend(q, attn.to_k(context.clip), attn.to_v(context.clip), heads)
        if context.ip_tokens:
            if len(context.ip_tokens) != len(self.num_tokens):
                raise ValueError(
                    f"expected {len(self.num_tokens)} IP token streams (audio, emotion), got {len(context.ip_tokens)}"
                )
            masks = context.ip_masks or (None,) * len(self.num_tokens)
            for i, tokens in enumerate(context.ip_tokens):
                if tokens.shape[1] != self.num_tokens[i]:
                    raise ValueError(f"IP branch {i}: expected {self.num_tokens[i]} tokens, got {tokens.shape[1]}")
                branch = attend(q, self.to_k_ip[i](tokens), self.to_v_ip[i](tokens), heads)
                if masks[i] is not None:
                    branch = branch * masks[i].to(branch.dtype)[:, :, None]
                out = out + self.scales[i] * branch
        out = attn.to_out[0](out)
        return attn.to_out[1](out)


def install_ip_processors(unet: nn.Module, num_tokens: Sequence[int], scales: Sequence[float]) -> int:
    """Give every ``attn2`` of ``unet`` a :class:`DecoupledCrossAttnProcessor`; returns how many were installed.

    Self-attention (``attn1``) keeps its processor. New K/V are copies of the layer's ``to_k`` / ``to_v``.
    """
    count = 0
    for name, module in list(unet.named_modules()):
        if not name.endswith("attn2"):
            continue
        inner_dim = module.to_k.out_features
        proc = DecoupledCrossAttnProcessor(module.to_k.in_features, inner_dim, num_tokens, scales)
        w, p = module.to_k.weight, next(proc.parameters())
        if (p.device, p.dtype) != (w.device, w.dtype):  # no-op moves are skipped (fake tensors cannot be swapped)
            proc.to(device=w.device, dtype=w.dtype)
        if module.to_k.weight.device.type != "meta":
            proc.init_from_attention(module)
        module.set_processor(proc)
        count += 1
    return count
