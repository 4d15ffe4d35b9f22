"""The DICE-Talk UNet: diffusers' SVD ``UNetSpatioTemporalConditionModel`` plus the release's three changes.

1. ``spatial_condition`` (the PoseGuider output) is added to the ``conv_in`` features;
2. every ``attn2`` gets a :class:`~.attention.DecoupledCrossAttnProcessor` with an audio and an emotion branch,
   masked to the face region in the spatial transformer blocks;
3. the temporal transformer blocks cross-attend to condition tokens averaged over the frames of the window
   (the release's ``spatial2time``), unmasked; stock diffusers uses the first frame's tokens instead.

The class only overrides ``forward``: modules and parameter names are diffusers', so the SVD ``unet/`` folder and
the release ``unet.pth`` load directly. The forward walks the stock down/mid/up blocks itself (the same order of
calls as diffusers) so that it can pass the per-call condition context, checkpoint activations and return the
deepest (mid-block) features for the latent emotion classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from diffusers import UNetSpatioTemporalConditionModel
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import CrossAttnContext, install_ip_processors
from .config import ModelConfig


@dataclass(frozen=True)
class UNetOutput:
    """sample: (B, F, out_channels, h, w) model output; mid_features: (B*F, C_deep, h/2^k, w/2^k)."""

    sample: torch.Tensor
    mid_features: torch.Tensor


@dataclass(frozen=True)
class _Conditions:
    clip: torch.Tensor  # (B*F, L, D)
    ip_tokens: tuple[torch.Tensor, ...]  # each (B*F, T_i, D)
    face_mask: torch.Tensor | None  # (B*F, 1, H, W) in [0, 1]
    num_frames: int


def downsample_face_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, 1, H, W) face mask -> (N, 1, height, width) at a block's resolution, as the release does it: bicubic
    interpolation without antialiasing (diffusers ``IPAdapterMaskProcessor.downsample``), so values at the box
    edge may overshoot [0, 1] slightly."""
    if mask.shape[-2:] == (height, width):
        return mask
    return F.interpolate(mask, size=(height, width), mode="bicubic", align_corners=False)


def _spatial_context(cond: _Conditions, height: int, width: int) -> CrossAttnContext:
    masks = None
    if cond.face_mask is not None and cond.ip_tokens:
        m = downsample_face_mask(cond.face_mask.to(cond.clip.dtype), height, width).flatten(1)
        masks = (m,) * len(cond.ip_tokens)
    return CrossAttnContext(clip=cond.clip, ip_tokens=cond.ip_tokens, ip_masks=masks)


def _frame_average(tokens: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(B*F, T, D) -> (B, T, D): mean over the frames of each window (the release's ``spatial2time``)."""
    return tokens.reshape(-1, num_frames, *tokens.shape[1:]).mean(dim=1)


def _temporal_context(cond: _Conditions) -> CrossAttnContext:
    return CrossAttnContext(
        clip=_frame_average(cond.clip, cond.num_frames),
        ip_tokens=tuple(_frame_average(t, cond.num_frames) for t in cond.ip_tokens),
        ip_masks=None,
    )


def spatio_temporal_transformer(module: nn.Module, hidden_states: torch.Tensor, cond: _Conditions,
                                image_only_indicator: torch.Tensor) -> torch.Tensor:
    """Forward of a diffusers ``TransformerSpatioTemporalModel`` with DICE-Talk conditions. (B*F, C, h, w)."""
    batch_frames, _, height, width = hidden_states.shape
    num_frames = cond.num_frames
    batch_size = batch_frames // num_frames
    residual = hidden_states
    x = module.norm(hidden_states)
    inner_dim = x.shape[1]
    x = x.permute(0, 2, 3, 1).reshape(batch_frames, height * width, inner_dim)
    x = module.proj_in(x)
    frame_ids = torch.arange(num_frames, device=x.device).repeat(batch_size)
    frame_emb = module.time_pos_embed(module.time_proj(frame_ids).to(x.dtype))[:, None, :]
    spatial_ctx = _spatial_context(cond, height, width)
    temporal_ctx = _temporal_context(cond)
    for block, temporal_block in zip(module.transformer_blocks, module.temporal_transformer_blocks):
        x = block(x, encoder_hidden_states=spatial_ctx)
        mix = temporal_block(x + frame_emb, num_frames=num_frames, encoder_hidden_states=temporal_ctx)
        x = module.time_mixer(x_spatial=x, x_temporal=mix, image_only_indicator=image_only_indicator)
    x = module.proj_out(x)
    x = x.reshape(batch_frames, height, width, inner_dim).permute(0, 3, 1, 2).contiguous()
    return x + residual


class DiceTalkUNet(UNetSpatioTemporalConditionModel):
    """SVD UNet with DICE-Talk conditioning; build with :func:`build_unet` (installs the IP processors)."""

    _dicetalk_checkpointing = False

    def set_activation_checkpointing(self, enabled: bool) -> None:
        """Recompute resnet and transformer activations in the backward pass (memory for time)."""
        self._dicetalk_checkpointing = bool(enabled)

    def _run(self, fn: Callable, *args):
        if self._dicetalk_checkpointing and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False)
        return fn(*args)

    def forward(  # type: ignore[override]
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        audio_tokens: torch.Tensor | None = None,
        emotion_tokens: torch.Tensor | None = None,
        face_mask: torch.Tensor | None = None,
        spatial_condition: torch.Tensor | None = None,
    ) -> UNetOutput:
        """One denoiser evaluation.

        sample: (B, F, in_channels, h, w) noisy latents (scaled by c_in) concatenated with the reference latents;
        timestep: () or (B,) (SVD: 0.25 * log sigma); encoder_hidden_states: (B, L, D) CLIP tokens for all frames
        or (B, F, L, D) per frame; added_time_ids: (B, 3) [fps, motion bucket, expression bucket];
        audio_tokens / emotion_tokens: (B, F, T, D), both or neither; face_mask: (B, F, 1, H, W) in [0, 1] at
        any resolution (bicubic-downsampled to each block, :func:`downsample_face_mask`); spatial_condition: (B, F, C0, h, w) PoseGuider output.
        """
        b, f = sample.shape[:2]
        if (audio_tokens is None) != (emotion_tokens is None):
            raise ValueError("pass both audio_tokens and emotion_tokens, or neither")
        t = torch.as_tensor(timestep, device=sample.device)
        t = t.reshape(-1).expand(b) if t.numel() in (1, b) else None
        if t is None:
            raise ValueError(f"timestep must be a scalar or have {b} entries, got shape {tuple(torch.as_tensor(timestep).shape)}")
        emb = self.time_embedding(self.time_proj(t).to(sample.dtype))
        time_ids = self.add_time_proj(added_time_ids.flatten()).reshape(b, -1).to(emb.dtype)
        emb = (emb + self.add_embedding(time_ids)).repeat_interleave(f, dim=0)

        clip = encoder_hidden_states
        clip = clip.flatten(0, 1) if clip.ndim == 4 else clip.repeat_interleave(f, dim=0)
        ip_tokens: tuple[torch.Tensor, ...] = ()
        if audio_tokens is not None:
            ip_tokens = (audio_tokens.flatten(0, 1).to(clip.dtype), emotion_tokens.flatten(0, 1).to(clip.dtype))
        mask = face_mask.flatten(0, 1) if face_mask is not None else None
        cond = _Conditions(clip=clip, ip_tokens=ip_tokens, face_mask=mask, num_frames=f)

        x = self.conv_in(sample.flatten(0, 1))
        if spatial_condition is not None:
            x = x + spatial_condition.flatten(0, 1).to(x.dtype)
        indicator = torch.zeros(b, f, dtype=x.dtype, device=x.device)

        def attn_fn(module):
            return lambda h: spatio_temporal_transformer(module, h, cond, indicator)

        skips = [x]
        for block in self.down_blocks:
            attentions = getattr(block, "attentions", [None] * len(block.resnets))
            for resnet, attn in zip(block.resnets, attentions):
                x = self._run(resnet, x, emb, indicator)
                if attn is not None:
                    x = self._run(attn_fn(attn), x)
                skips.append(x)
            for down in block.downsamplers or []:
                x = down(x)
                skips.append(x)

        mid = self.mid_block
        x = self._run(mid.resnets[0], x, emb, indicator)
        for attn, resnet in zip(mid.attentions, mid.resnets[1:]):
            x = self._run(attn_fn(attn), x)
            x = self._run(resnet, x, emb, indicator)
        mid_features = x

        n_up = len(self.up_blocks) - 1
        odd_size = any(s % (2 ** n_up) for s in sample.shape[-2:])
        for i, block in enumerate(self.up_blocks):
            attentions = getattr(block, "attentions", [None] * len(block.resnets))
            for resnet, attn in zip(block.resnets, attentions):
                x = torch.cat([x, skips.pop()], dim=1)
                x = self._run(resnet, x, emb, indicator)
                if attn is not None:
                    x = self._run(attn_fn(attn), x)
            if block.upsamplers is not None:
                size = skips[-1].shape[2:] if (odd_size and i < n_up) else None
                for up in block.upsamplers:
                    x = up(x, size)

        x = self.conv_out(self.conv_act(self.conv_norm_out(x)))
        return UNetOutput(sample=x.reshape(b, f, *x.shape[1:]), mid_features=mid_features)


def unet_kwargs(cfg: ModelConfig) -> dict:
    """Keyword arguments of ``UNetSpatioTemporalConditionModel`` for ``cfg`` (SVD-xt values at paper size)."""
    u = cfg.unet
    return dict(
        sample_size=None,
        in_channels=u.in_channels,
        out_channels=u.out_channels,
        down_block_types=u.down_block_types,
        up_block_types=u.up_block_types,
        block_out_channels=u.block_out_channels,
        addition_time_embed_dim=u.addition_time_embed_dim,
        projection_class_embeddings_input_dim=3 * u.addition_time_embed_dim,
        layers_per_block=u.layers_per_block,
        cross_attention_dim=u.cross_attention_dim,
        transformer_layers_per_block=u.transformer_layers_per_block,
        num_attention_heads=u.num_attention_heads,
        num_frames=u.num_frames,
    )


def build_unet(cfg: ModelConfig) -> DiceTalkUNet:
    """Random-initialised DICE-Talk UNet with IP processors on every ``attn2`` (K/V copied from to_k/to_v).

    Build inside ``with torch.device("meta"):`` to get names and shapes without allocating memory.
    """
    unet = DiceTalkUNet(**unet_kwargs(cfg))
    add_ip_adapters(unet, cfg)
    return unet


def add_ip_adapters(unet: UNetSpatioTemporalConditionModel, cfg: ModelConfig) -> int:
    """Install the audio/emotion processors (e.g. after ``DiceTalkUNet.from_pretrained(svd_dir)``)."""
    return install_ip_processors(unet, cfg.ip_tokens, cfg.ip_scales)
