"""Frozen SVD-xt parts used around the DICE-Talk network: VAE, CLIP image encoder, base UNet weights.

The official pipeline uses the SVD-xt diffusers folder: ``vae/``
(``AutoencoderKLTemporalDecoder``), ``image_encoder/`` (``CLIPVisionModelWithProjection``, ViT-H/14, 224 px),
``unet/`` (the base UNet, overwritten by ``unet.pth``) and ``scheduler/``. :func:`write_random_svd_xt` writes a
folder with the same layout and tiny random modules (registry key ``svd-xt``), so the loading code is the same
for tests and for the real folder.

Latent conventions (DICE-Talk pipeline): the reference latent concatenated to the UNet input is the VAE
posterior *mode* without scaling; video latents to denoise are the mode times ``scaling_factor`` (0.18215).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dicetalk_bench.fileutil import atomic_write_bytes
from dicetalk_bench.weights.random_weights import register_random_builder

from .config import TINY
from .sampling import SVD_SCHEDULER_CONFIG
from .unet import unet_kwargs

# OpenAI CLIP image normalisation (CLIPImageProcessor defaults used by SVD's feature_extractor)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class FrozenEncoders:
    """vae: AutoencoderKLTemporalDecoder; image_encoder: CLIPVisionModelWithProjection (both eval, no grad)."""

    vae: nn.Module
    image_encoder: nn.Module

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "FrozenEncoders":
        self.vae.to(device=device, dtype=dtype)
        self.image_encoder.to(device=device, dtype=dtype)
        return self

    @torch.no_grad()
    def encode_latents(self, images: torch.Tensor, chunk: int = 8) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> unscaled posterior mode (N, 4, H/8, W/8), ``chunk`` images at a time (the
        encoder is per image; at 512 px one 128-channel activation of 25 frames alone takes 3.4 GB)."""
        x = images.to(self.vae.dtype)
        return torch.cat([self.vae.encode(x[i:i + chunk]).latent_dist.mode() for i in range(0, x.shape[0], chunk)])

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @torch.no_grad()
    def clip_embed(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, 1, D) CLIP image embeddings (SVD's single context token)."""
        size = int(self.image_encoder.config.image_size)
        x = F.interpolate(images.float(), size=(size, size), mode="bicubic", align_corners=False, antialias=True)
        x = (x + 1) / 2
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
        x = ((x - mean) / std).to(self.image_encoder.dtype)
        return self.image_encoder(pixel_values=x).image_embeds[:, None, :]

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, chunk: int = 10) -> torch.Tensor:
        """(B, F, 4, h, w) scaled latents -> (B, F, 3, 8h, 8w) in [-1, 1], decoding ``chunk`` frames at a time."""
        b, f = latents.shape[:2]
        z = (latents / self.scaling_factor).flatten(0, 1).to(self.vae.dtype)
        out = [self.vae.decode(z[i:i + chunk], num_frames=min(chunk, z.shape[0] - i)).sample
               for i in range(0, z.shape[0], chunk)]
        return torch.cat(out).float().clamp(-1, 1).reshape(b, f, *out[0].shape[1:])


def load_frozen_encoders(svd_dir: str | os.PathLike) -> FrozenEncoders:
    """VAE and CLIP image encoder from an SVD-xt diffusers folder (real or :func:`write_random_svd_xt`)."""
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionModelWithProjection

    svd_dir = Path(svd_dir)
    for sub in ("vae", "image_encoder"):
        if not (svd_dir / sub).is_dir():
            raise FileNotFoundError(f"SVD folder {svd_dir} has no {sub}/ subfolder; expected the diffusers layout of "
                                    "stabilityai/stable-video-diffusion-img2vid-xt")
    vae = AutoencoderKLTemporalDecoder.from_pretrained(svd_dir / "vae").eval().requires_grad_(False)
    enc = CLIPVisionModelWithProjection.from_pretrained(svd_dir / "image_encoder").eval().requires_grad_(False)
    return FrozenEncoders(vae=vae, image_encoder=enc)


def write_random_svd_xt(target: Path, seed: int) -> None:
    """Tiny random SVD-xt folder (diffusers layout: model_index.json, unet/, vae/, image_encoder/, scheduler/).

    Sizes: the UNet of ``TINY``, a 4-level VAE with 32 channels (downsampling 8, like SVD's), a one-layer CLIP
    vision tower at 32 px with 32-d projection (``TINY.cross_attention_dim``).
    """
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    target = Path(target)
    torch.manual_seed(seed)
    UNetSpatioTemporalConditionModel(**unet_kwargs(TINY)).save_pretrained(target / "unet")
    AutoencoderKLTemporalDecoder(
        down_block_types=("DownEncoderBlock2D",) * 4, block_out_channels=(32, 32, 32, 32), layers_per_block=1,
        latent_channels=4, sample_size=64,
        # ~1 / std of this random VAE's latents, the rule SD used to pick 0.18215, so tiny latents have unit scale
        scaling_factor=4.0,
    ).save_pretrained(target / "vae")
    clip_cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, projection_dim=TINY.cross_attention_dim,
                                num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
    CLIPVisionModelWithProjection(clip_cfg).save_pretrained(target / "image_encoder")
    sched = {"_class_name": "EulerDiscreteScheduler", **SVD_SCHEDULER_CONFIG}
    atomic_write_bytes(target / "scheduler" / "scheduler_config.json", json.dumps(sched, indent=2).encode())
    index = {"_class_name": "StableVideoDiffusionPipeline", "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
             "vae": ["diffusers", "AutoencoderKLTemporalDecoder"],
             "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
             "scheduler": ["diffusers", "EulerDiscreteScheduler"]}
    atomic_write_bytes(target / "model_index.json", json.dumps(index, indent=2).encode())

register_random_builder("svd-xt", write_random_svd_xt)
