"""Frozen configurations of the DICE-Talk network: ``PAPER`` (the official release) and ``TINY`` (CPU tests).

Every constant of ``PAPER`` comes from the official release (toto222/DICE-Talk a8a92b1);
the comment at each value names the release file it comes from. ``TINY`` keeps the same structure (same module types,
same number of IP branches, same input formats: 10 x 5 x 384 Whisper windows and 256-d emotion priors) with
a few channels, so a training step runs on one CPU core in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class UNetConfig:
    """Arguments of diffusers ``UNetSpatioTemporalConditionModel`` (defaults: SVD img2vid-xt ``unet/config.json``)."""

    in_channels: int = 8  # 4 noisy latent + 4 reference latent, concatenated on channels
    out_channels: int = 4
    down_block_types: tuple[str, ...] = (
        "CrossAttnDownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
        "CrossAttnDownBlockSpatioTemporal",
        "DownBlockSpatioTemporal",
    )
    up_block_types: tuple[str, ...] = (
        "UpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
        "CrossAttnUpBlockSpatioTemporal",
    )
    block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280)
    layers_per_block: int = 2
    num_attention_heads: tuple[int, ...] = (5, 10, 20, 20)
    cross_attention_dim: int = 1024
    transformer_layers_per_block: int = 1
    addition_time_embed_dim: int = 256  # 3 added time ids -> projection input 3 * 256 = 768
    num_frames: int = 25


@dataclass(frozen=True)
class AudioProjConfig:
    """``AudioProjModel`` (audio_adapter/audio_proj.py): Whisper window -> ``context_tokens`` tokens per frame."""

    seq_len: int = 10  # Whisper frames per generated frame (200 ms at 50 Hz)
    blocks: int = 5  # hidden states stacked: embedding output + 4 encoder layers of whisper-tiny
    channels: int = 384  # whisper-tiny d_model
    intermediate_dim: int = 1024
    context_tokens: int = 32


@dataclass(frozen=True)
class EmotionConfig:
    """``EmotionModel`` (emotion_adapter/emo.py): prior -> bank -> 32 emotion tokens; latent classifier."""

    prior_dim: int = 256  # the shipped priors are {'mu': (1, 256)}
    bank_size: int = 64
    intermediate_dim: int = 1024
    context_tokens: int = 32
    num_heads: int = 8
    commitment: float = 0.25  # VQ-VAE beta, emo.py
    retrieval: bool = False  # release yaml: attention over all bank entries
    classifier_hidden: tuple[int, int] = (512, 256)
    classifier_dropout: float = 0.1
    num_classes: int = 22  # 7 emotions x 3 levels + neutral


@dataclass(frozen=True)
class PoseGuiderConfig:
    """``PoseGuider(conditioning_embedding_channels=320, block_out_channels=(16, 32, 96, 256))``."""

    conditioning_channels: int = 3  # binary face-box mask drawn as an RGB image
    block_out_channels: tuple[int, ...] = (16, 32, 96, 256)


@dataclass(frozen=True)
class ModelConfig:
    """The whole DICE-Talk network; ``ip_tokens[i]`` / ``ip_scales[i]``: branch 0 audio, branch 1 emotion."""

    name: str = "paper"
    unet: UNetConfig = field(default_factory=UNetConfig)
    audio: AudioProjConfig = field(default_factory=AudioProjConfig)
    emotion: EmotionConfig = field(default_factory=EmotionConfig)
    pose_guider: PoseGuiderConfig = field(default_factory=PoseGuiderConfig)
    ip_scales: tuple[float, float] = (1.0, 1.0)  # ip_audio_scale, ip_emo_scale (release yaml)
    # pixels of the square frames a release folder of this size is sampled at (release: shorter side 512)
    sample_resolution: int = 512

    @property
    def cross_attention_dim(self) -> int:
        return self.unet.cross_attention_dim

    @property
    def ip_tokens(self) -> tuple[int, int]:
        return (self.audio.context_tokens, self.emotion.context_tokens)

    @property
    def deepest_channels(self) -> int:
        """Channels of the mid-block features the latent emotion classifier reads (1280 at paper size)."""
        return self.unet.block_out_channels[-1]

    @property
    def latent_downsample(self) -> int:
        """Pixel-to-latent factor the PoseGuider must reproduce (one stride-2 conv per block transition)."""
        return 2 ** (len(self.pose_guider.block_out_channels) - 1)


PAPER = ModelConfig()

TINY = ModelConfig(
    name="tiny",
    unet=UNetConfig(
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        block_out_channels=(32, 64),  # GroupNorm(32) in the resnets needs multiples of 32
        layers_per_block=1,
        num_attention_heads=(2, 4),
        cross_attention_dim=32,
        addition_time_embed_dim=8,
        num_frames=25,
    ),
    audio=AudioProjConfig(intermediate_dim=64, context_tokens=4),
    emotion=EmotionConfig(bank_size=16, intermediate_dim=64, context_tokens=4, num_heads=2, classifier_hidden=(32, 16)),
    pose_guider=PoseGuiderConfig(block_out_channels=(8, 8, 16, 16)),
    sample_resolution=32,
)

CONFIGS: dict[str, ModelConfig] = {"paper": PAPER, "tiny": TINY}


def get_model_config(name: str) -> ModelConfig:
    """``PAPER`` or ``TINY`` by name; ``ValueError`` naming the valid names otherwise."""
    try:
        return CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown model size {name!r}; expected one of {sorted(CONFIGS)}") from None
