"""Emotion bank, emotion tokens and the latent emotion classifier (DICE-Talk, ``emotion_adapter/emo.py``).

``EmotionModel`` turns a 256-d emotion prior into ``context_tokens`` tokens for IP branch 1:

- ``codebook`` (:class:`EmotionBank`): ``fc`` maps the prior to the bank width, then vector quantisation against a
  64 x 1024 bank (van den Oord et al. 2017, VQ-VAE): nearest entry by L2, loss
  ``MSE(q, sg[z]) + beta * MSE(sg[q], z)`` with commitment beta = 0.25, straight-through ``z + sg(q - z)``;
- ``emo_linear``: 32 query tokens from the prior; ``kv_tokens_linear``: 32 key/value tokens per bank entry;
- ``attention`` (:class:`QKVAttention`): the queries attend either over the tokens of the retrieved entry
  (``retrieval=True``, VQ loss active) or over the tokens of all 64 entries (attention aggregation, the release's
  inference setting, VQ loss 0; the bank is read detached there, as the release reads it through ``.data``);
- ``classifier`` (:class:`EmotionClassifier`): pooled deepest UNet features (1280 ch) -> 22 emotion/level logits.

Parameter names equal the release checkpoint ``emo_model.pth``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .audio_proj import AudioProjModel
from .config import EmotionConfig


def vector_quantise(z: torch.Tensor, codebook: torch.Tensor, commitment: float
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest-entry VQ with straight-through gradients (VQ-VAE).

    z: (N, D); codebook: (K, D). Returns (q_st (N, D), loss (), indices (N,) int64) where
    ``q_st = z + sg(q - z)`` equals the chosen entries in value and passes gradients to ``z`` unchanged, and
    ``loss = MSE(q, sg z) + commitment * MSE(sg q, z)`` trains the bank and commits ``z`` to it.
    """
    dist = (z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.t() + codebook.pow(2).sum(1)[None, :])
    indices = dist.argmin(dim=1)
    q = codebook[indices]
    loss = F.mse_loss(q, z.detach()) + commitment * F.mse_loss(q.detach(), z)
    q_st = z + (q - z).detach()
    return q_st, loss, indices


class EmotionBank(nn.Module):
    """``fc: Linear(prior_dim -> dim)`` and ``codebook: Embedding(size, dim)`` initialised U(-1/size, 1/size)."""

    def __init__(self, prior_dim: int, dim: int, size: int, commitment: float = 0.25):
        super().__init__()
        self.commitment = commitment
        self.fc = nn.Linear(prior_dim, dim)
        self.codebook = nn.Embedding(size, dim)
        nn.init.uniform_(self.codebook.weight, -1.0 / size, 1.0 / size)

    def forward(self, prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """prior (..., prior_dim) -> (q_st (..., dim), vq_loss (), indices (...))."""
        lead = prior.shape[:-1]
        z = self.fc(prior).reshape(-1, self.codebook.embedding_dim)
        q_st, loss, idx = vector_quantise(z, self.codebook.weight, self.commitment)
        return q_st.reshape(*lead, -1), loss, idx.reshape(lead)


class QKVAttention(nn.Module):
    """Multi-head attention with ``fc_q``, ``fc_k``, ``fc_v`` (bias) and no output projection or residual."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.fc_q = nn.Linear(dim, dim)
        self.fc_k = nn.Linear(dim, dim)
        self.fc_v = nn.Linear(dim, dim)

    def forward(self, queries: torch.Tensor, keys_values: torch.Tensor) -> torch.Tensor:
        """queries (N, Lq, D); keys_values (N or 1, Lk, D) -> (N, Lq, D)."""
        n, lq, d = queries.shape
        h = self.num_heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(x.shape[0], x.shape[1], h, d // h).transpose(1, 2)

        q = split(self.fc_q(queries))
        k = split(self.fc_k(keys_values)).expand(n, -1, -1, -1)
        v = split(self.fc_v(keys_values)).expand(n, -1, -1, -1)
        out = F.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(n, lq, d)


class EmotionClassifier(nn.Module):
    """(N, C, h, w) features -> (N, num_classes) logits: avg-pool, fc1+ReLU+drop, fc2+ReLU+drop, fc3."""

    def __init__(self, input_dim: int, num_classes: int, hidden: tuple[int, int] = (512, 256), dropout: float = 0.1):
        super().__init__()
        self.fc1 = nn.Linear(input_dim, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], num_classes)
        self.dropout = nn.Dropout(dropout)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.mean(dim=(2, 3))
        x = self.dropout(F.relu(self.fc1(x)))
        x = self.dropout(F.relu(self.fc2(x)))
        return self.fc3(x)


@dataclass(frozen=True)
class EmotionTokens:
    """tokens: (B, F, T, D) for IP branch 1; vq_loss: () (0 in aggregation mode); indices: (B, F) bank entries."""

    tokens: torch.Tensor
    vq_loss: torch.Tensor
    indices: torch.Tensor


class EmotionModel(nn.Module):
    """Emotion prior (B, F, prior_dim) -> :class:`EmotionTokens`; ``classifier`` is used by the training loss."""

    def __init__(self, cfg: EmotionConfig, cross_attention_dim: int, classifier_input_dim: int):
        super().__init__()
        self.cfg = cfg
        d = cross_attention_dim
        self.emo_linear = AudioProjModel(1, 1, cfg.prior_dim, cfg.intermediate_dim, d, cfg.context_tokens)
        self.kv_tokens_linear = AudioProjModel(1, 1, d, cfg.intermediate_dim, d, cfg.context_tokens)
        self.codebook = EmotionBank(cfg.prior_dim, d, cfg.bank_size, cfg.commitment)
        self.attention = QKVAttention(d, cfg.num_heads)
        self.classifier = EmotionClassifier(classifier_input_dim, cfg.num_classes, cfg.classifier_hidden,
                                            cfg.classifier_dropout)

    def forward(self, prior: torch.Tensor, drop: torch.Tensor | None = None,
                retrieval: bool | None = None) -> EmotionTokens:
        """prior: (B, F, prior_dim); drop: (B,) bool, rows replaced by the null (all-zero) prior for CFG dropout."""
        if prior.ndim != 3 or prior.shape[-1] != self.cfg.prior_dim:
            raise ValueError(f"emotion prior must be (B, F, {self.cfg.prior_dim}), got {tuple(prior.shape)}")
        retrieval = self.cfg.retrieval if retrieval is None else retrieval
        b, f, _ = prior.shape
        q_codes, vq_loss, idx = self.codebook(prior)
        if drop is not None:
            keep = (~drop).to(prior.dtype)[:, None, None]
            prior = prior * keep
            q_codes = q_codes * keep
        queries = self.emo_linear(prior[:, :, None, None, :]).flatten(0, 1)  # (B*F, T, D)
        if retrieval:
            kv = self.kv_tokens_linear(q_codes[:, :, None, None, :]).flatten(0, 1)  # (B*F, T, D)
        else:
            # (K, D) -> tokens (K, T, D) -> one sequence (1, K*T, D); the release reads the bank through `.data`
            # here (emo.py), so in this mode the bank gets no gradient (it is trained by the VQ loss in retrieval)
            bank = self.codebook.codebook.weight.detach()
            kv = self.kv_tokens_linear(bank[:, None, None, :]).reshape(1, -1, bank.shape[1])
            vq_loss = torch.zeros((), dtype=prior.dtype, device=prior.device)
        tokens = self.attention(queries, kv).reshape(b, f, self.cfg.context_tokens, -1)
        return EmotionTokens(tokens=tokens, vq_loss=vq_loss, indices=idx)
