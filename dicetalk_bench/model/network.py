"""Builders of the four DICE-Talk modules and the container that trains them together.

The release stores each module in its own file (``unet.pth``, ``pose_guider.pth``, ``audio_linear.pth``,
``emo_model.pth``); :class:`DiceTalkNetwork` keeps them as the attributes ``unet``, ``pose_guider``, ``audio_proj``
and ``emo_model`` so each sub-state-dict has exactly the release keys (see ``official.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .audio_proj import AudioProjModel
from .config import ModelConfig
from .emotion_bank import EmotionModel, EmotionTokens
from .pose_guider import PoseGuider
from .unet import DiceTalkUNet, UNetOutput, build_unet


def build_pose_guider(cfg: ModelConfig) -> PoseGuider:
    """PoseGuider whose output width equals the UNet's first block (320 at paper size)."""
    return PoseGuider(cfg.unet.block_out_channels[0], cfg.pose_guider.conditioning_channels,
                      cfg.pose_guider.block_out_channels)


def build_audio_proj(cfg: ModelConfig) -> AudioProjModel:
    a = cfg.audio
    return AudioProjModel(a.seq_len, a.blocks, a.channels, a.intermediate_dim, cfg.cross_attention_dim,
                          a.context_tokens)


def build_emotion_model(cfg: ModelConfig) -> EmotionModel:
    return EmotionModel(cfg.emotion, cfg.cross_attention_dim, cfg.deepest_channels)


@dataclass(frozen=True)
class DenoiserOutput:
    """unet: the UNet output (sample + mid features); emotion: tokens, VQ loss and bank indices."""

    unet: UNetOutput
    emotion: EmotionTokens


class DiceTalkNetwork(nn.Module):
    """The trainable DICE-Talk modules; frozen encoders (VAE, CLIP, Whisper) live outside."""

    def __init__(self, cfg: ModelConfig, unet: DiceTalkUNet | None = None):
        super().__init__()
        self.cfg = cfg
        self.unet = unet if unet is not None else build_unet(cfg)
        self.pose_guider = build_pose_guider(cfg)
        self.audio_proj = build_audio_proj(cfg)
        self.emo_model = build_emotion_model(cfg)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor, clip_embeds: torch.Tensor,
                added_time_ids: torch.Tensor, whisper_windows: torch.Tensor, emotion_prior: torch.Tensor,
                face_mask: torch.Tensor, drop_conditions: torch.Tensor | None = None,
                retrieval: bool | None = None) -> DenoiserOutput:
        """sample (B, F, 8, h, w); whisper_windows (B, F, 10, 5, 384); emotion_prior (B, F, 256);
        face_mask (B, F, 3, H, W) in [0, 1] at pixel size H = h * 8; drop_conditions (B,) bool: rows whose audio
        features and emotion prior are replaced by zeros before the projectors (the release's null condition)."""
        if drop_conditions is not None:
            keep = (~drop_conditions).to(whisper_windows.dtype).reshape(-1, 1, 1, 1, 1)
            whisper_windows = whisper_windows * keep
        audio_tokens = self.audio_proj(whisper_windows)
        emotion = self.emo_model(emotion_prior, drop=drop_conditions, retrieval=retrieval)
        spatial = self.pose_guider(face_mask)
        out = self.unet(sample, timestep, clip_embeds, added_time_ids, audio_tokens=audio_tokens,
                        emotion_tokens=emotion.tokens, face_mask=face_mask[:, :, :1], spatial_condition=spatial)
        return DenoiserOutput(unet=out, emotion=emotion)
