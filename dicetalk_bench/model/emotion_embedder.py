"""Disentangled emotion embedder (the paper's V-mode, not in the release; reconstructed from the paper, arXiv:2504.18087).

A clip's emotion is represented as an identity-agnostic Gaussian N(mu, diag sigma^2) in R^256:

- visual cues: :class:`FaceCropEncoder`, a small CNN (4 stride-2 3x3 convs, 32-64-128-128 channels, GroupNorm,
  SiLU, global average pool, linear) applied to every face crop of the clip, trained from scratch in this stage
  (no pretrained expression network is needed, and nothing is downloaded);
- audio cues: the per-frame Whisper states of the preprocessing (2 Whisper frames x 5 layers x 384 per video
  frame) flattened and projected by a linear layer;
- cross-modal attention: visual tokens query the audio tokens (multi-head attention, residual, LayerNorm, MLP),
  masked mean over frames, then two heads for mu and log sigma^2 (256-d: the size of the shipped priors).

Training (its own stage, before the generator; SVP's stage order): supervised contrastive loss
(Khosla et al. 2020) on the reparameterised samples z = mu + sigma * eps whose positives are clips with the same
emotion from *different* identities, plus a KL(N(mu, sigma^2) || N(0, I)) regulariser. P-mode priors are the
per-emotion means of mu over the training set (:func:`emotion_priors`), written in the release ``.npy`` format
by :func:`dicetalk_bench.model.priors.save_priors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class EmbedderConfig:
    prior_dim: int = 256  # the release priors' width
    d_model: int = 128
    num_heads: int = 4
    cnn_channels: tuple[int, ...] = (32, 64, 128, 128)
    audio_in: tuple[int, int, int] = (2, 5, 384)  # Whisper states per 25-fps video frame (preprocessing format)
    temperature: float = 0.1  # SupCon temperature (Khosla et al. 2020 use 0.07-0.1)
    kl_weight: float = 1e-3


class FaceCropEncoder(nn.Module):
    """(N, 3, H, W) face crops in [-1, 1] -> (N, d_model) per-frame visual emotion features."""

    def __init__(self, d_model: int, channels: tuple[int, ...] = (32, 64, 128, 128)):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(min(8, c), c), nn.SiLU()]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(c_in, d_model)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(crops).mean(dim=(2, 3)))


@dataclass(frozen=True)
class EmbedderOutput:
    """mu, logvar: (B, prior_dim); z: (B, prior_dim) reparameterised sample (equals mu in eval mode)."""

    mu: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I) (Kingma & Welling 2014)."""
    eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
    return mu + torch.exp(0.5 * logvar) * eps


class EmotionEmbedder(nn.Module):
    """Face crops (B, T, 3, H, W) + Whisper states (B, T, 2, 5, 384) [+ frame mask (B, T)] -> EmbedderOutput."""

    def __init__(self, cfg: EmbedderConfig = EmbedderConfig()):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.visual = FaceCropEncoder(d, cfg.cnn_channels)
        self.audio = nn.Linear(int(np.prod(cfg.audio_in)), d)
        self.cross = nn.MultiheadAttention(d, cfg.num_heads, batch_first=True)
        self.norm1 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.norm2 = nn.LayerNorm(d)
        self.mu_head = nn.Linear(d, cfg.prior_dim)
        self.logvar_head = nn.Linear(d, cfg.prior_dim)

    def forward(self, crops: torch.Tensor, whisper_states: torch.Tensor, frame_mask: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> EmbedderOutput:
        b, t = crops.shape[:2]
        if whisper_states.shape[:2] != (b, t) or tuple(whisper_states.shape[2:]) != self.cfg.audio_in:
            raise ValueError(f"whisper_states must be (B, T, {', '.join(map(str, self.cfg.audio_in))}) matching crops "
                             f"(B={b}, T={t}); got {tuple(whisper_states.shape)}")
        v = self.visual(crops.flatten(0, 1)).reshape(b, t, -1)
        a = self.audio(whisper_states.flatten(2).to(v.dtype))
        pad = None if frame_mask is None else ~frame_mask.bool()
        attended, _ = self.cross(v, a, a, key_padding_mask=pad, need_weights=False)
        h = self.norm1(v + attended)
        h = self.norm2(h + self.mlp(h))
        w = torch.ones(b, t, device=h.device, dtype=h.dtype) if frame_mask is None else frame_mask.to(h.dtype)
        pooled = (h * w[..., None]).sum(1) / w.sum(1, keepdim=True).clamp_min(1)
        mu, logvar = self.mu_head(pooled), self.logvar_head(pooled).clamp(-10, 10)
        z = reparameterise(mu, logvar, generator) if self.training else mu
        return EmbedderOutput(mu=mu, logvar=logvar, z=z)


def supervised_contrastive_loss(z: torch.Tensor, emotion: torch.Tensor, identity: torch.Tensor,
                                temperature: float = 0.1) -> torch.Tensor:
    """SupCon over L2-normalised z (B, D): positives share the emotion and differ in identity.

    For anchor i with positives P(i) = {p: emotion_p = emotion_i, identity_p != identity_i}:
    L_i = -mean_{p in P(i)} log( exp(s_ip / tau) / sum_{a in A(i)} exp(s_ia / tau) ), where A(i) excludes i and
    the clips of i's own identity with i's emotion (neither positive nor negative, so identity cues are never
    rewarded). Anchors without positives are skipped; returns 0 when no anchor has one.
    """
    z = F.normalize(z, dim=-1)
    sim = z @ z.t() / temperature
    same_emotion = emotion[:, None] == emotion[None, :]
    same_identity = identity[:, None] == identity[None, :]
    positive = same_emotion & ~same_identity
    excluded = same_emotion & same_identity  # includes the diagonal
    logits = sim.masked_fill(excluded, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    n_pos = positive.sum(1)
    has = n_pos > 0
    if not bool(has.any()):
        return z.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~positive, 0.0).sum(1)[has] / n_pos[has])
    return per_anchor.mean()


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of KL(N(mu, exp(logvar)) || N(0, I)) = 0.5 sum(mu^2 + sigma^2 - 1 - log sigma^2)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()


def embedder_loss(out: EmbedderOutput, emotion: torch.Tensor, identity: torch.Tensor, cfg: EmbedderConfig
                  ) -> dict[str, torch.Tensor]:
    """{'loss', 'supcon', 'kl'}: loss = supcon(z) + kl_weight * KL."""
    supcon = supervised_contrastive_loss(out.z, emotion, identity, cfg.temperature)
    kl = gaussian_kl(out.mu, out.logvar)
    return {"loss": supcon + cfg.kl_weight * kl, "supcon": supcon, "kl": kl}


@torch.no_grad()
def emotion_priors(embedder: EmotionEmbedder, batches: Iterable[Mapping[str, torch.Tensor]],
                   names: Mapping[int, str]) -> dict[str, np.ndarray]:
    """Per-emotion mean of mu over ``batches`` -> {name: (1, prior_dim) float32} (the P-mode priors).

    Each batch holds 'crops', 'whisper_states', 'emotion' (B,) int and optionally 'frame_mask'. Emotions
    absent from every batch are left out.
    """
    was_training = embedder.training
    embedder.eval()
    sums: dict[int, torch.Tensor] = {}
    counts: dict[int, int] = {}
    for batch in batches:
        mu = embedder(batch["crops"], batch["whisper_states"], batch.get("frame_mask")).mu
        for label in batch["emotion"].unique().tolist():
            sel = batch["emotion"] == label
            sums[label] = sums.get(label, 0) + mu[sel].double().sum(0)
            counts[label] = counts.get(label, 0) + int(sel.sum())
    embedder.train(was_training)
    return {names[k]: (sums[k] / counts[k]).float().reshape(1, -1).cpu().numpy() for k in sorted(sums)}
