"""Whisper-tiny encoder for audio features: load a transformers folder, or build a random one of the same shape.

``--whisper DIR`` loads an ``openai/whisper-tiny`` transformers folder (``config.json`` + ``model.safetensors``)
through :func:`dicetalk_bench.weights.resolve`; only the encoder tensors are read. ``--whisper random:SEED``
writes a randomly initialised folder of the same format with :func:`write_random_whisper_tiny` (into a cache
folder) and loads it through the same code; its features are marked uncalibrated. Every feature file stores
:attr:`WhisperEncoderHandle.record` (key, file, sha256, calibrated).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: openai/whisper-tiny shape (datasets reference §7; Whisper paper table 1: tiny = 4 layers, width 384, 6 heads).
WHISPER_TINY_SHAPE: dict[str, Any] = dict(
    vocab_size=51865, num_mel_bins=80, d_model=384, encoder_layers=4, decoder_layers=4,
    encoder_attention_heads=6, decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536,
    max_source_positions=1500, max_target_positions=448,
)


@dataclass(frozen=True)
class WhisperEncoderHandle:
    """A loaded encoder plus what to record about it.

    ``encoder`` maps log-mel ``(B, 80, 3000)`` float32 to ``hidden_states``: 5 tensors ``(B, 1500, 384)``
    (the embedding output and the 4 layers, 50 Hz).
    """

    encoder: Any  # transformers WhisperEncoder, eval mode
    record: dict[str, Any]


def write_random_whisper_tiny(target: Path, seed: int) -> None:
    """Write a randomly initialised whisper-tiny transformers folder at ``target`` (official file format)."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(WhisperConfig(**WHISPER_TINY_SHAPE))
    model.save_pretrained(target, safe_serialization=True)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(target)


def _random_dir(seed: int) -> Path:
    base = os.environ.get("DICETALK_BENCH_CACHE") or Path.home() / ".cache" / "dicetalk_bench"
    return Path(base) / "random_weights" / f"whisper-tiny-random-{seed}"


def ensure_random_whisper_tiny(seed: int, folder: Path | None = None) -> Path:
    """The random whisper-tiny folder for ``seed`` (written once, atomically by folder rename)."""
    folder = Path(folder) if folder is not None else _random_dir(seed)
    if (folder / "model.safetensors").is_file():
        return folder
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    write_random_whisper_tiny(tmp, seed)
    folder.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(tmp, folder)
    except OSError:  # another process won the race: use its folder
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def load_encoder_from_folder(folder: Path) -> Any:
    """Build a ``WhisperEncoder`` from ``config.json`` and load the ``model.encoder.*`` tensors of ``model.safetensors``."""
    import torch
    from safetensors import safe_open
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    folder = Path(folder)
    cfg_path, st_path = folder / "config.json", folder / "model.safetensors"
    if not cfg_path.is_file() or not st_path.is_file():
        raise FileNotFoundError(f"whisper folder {folder} needs config.json and model.safetensors (a transformers "
                                f"save of openai/whisper-tiny)")
    config = WhisperConfig(**{k: v for k, v in json.loads(cfg_path.read_text()).items() if not k.startswith("_")})
    encoder = WhisperEncoder(config)
    state = {}
    with safe_open(str(st_path), framework="pt") as f:
        for name in f.keys():
            for prefix in ("model.encoder.", "encoder."):
                if name.startswith(prefix):
                    state[name[len(prefix):]] = f.get_tensor(name)
    missing, unexpected = encoder.load_state_dict(state, strict=False)
    missing = [m for m in missing if m != "embed_positions.weight" or "embed_positions.weight" not in state]
    if missing or unexpected:
        raise ValueError(f"whisper folder {folder}: encoder tensors do not match (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}); is it a whisper-tiny transformers checkpoint?")
    encoder.eval()
    encoder.requires_grad_(False)  # frozen feature extractor; never touch the global grad mode
    return encoder


_CACHE: dict[tuple[str, bool], WhisperEncoderHandle] = {}


def load_whisper(spec: str, *, allow_unverified: bool = False) -> WhisperEncoderHandle:
    """``spec`` is a folder path or ``random:SEED``; cached per process (Dask workers load it once)."""
    key = (spec, allow_unverified)
    if key in _CACHE:
        return _CACHE[key]
    from dicetalk_bench import weights

    if spec.startswith("random:"):
        try:
            seed = int(spec.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"--whisper {spec!r}: expected random:SEED with an integer seed") from None
        folder = ensure_random_whisper_tiny(seed)
        resolved = weights.resolve("whisper-tiny", folder, allow_unverified=True)
        record = resolved.record() | {"file": spec, "calibrated": False}
    else:
        resolved = weights.resolve("whisper-tiny", spec, allow_unverified=allow_unverified)
        folder = resolved.path
        record = resolved.record()
    handle = WhisperEncoderHandle(load_encoder_from_folder(folder), record)
    _CACHE[key] = handle
    return handle


def whisper_record(spec: str, *, allow_unverified: bool = False) -> dict[str, Any]:
    """What :func:`load_whisper` would record for ``spec``, without building the encoder (hash only)."""
    from dicetalk_bench import weights

    if spec.startswith("random:"):
        try:
            seed = int(spec.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"--whisper {spec!r}: expected random:SEED with an integer seed") from None
        resolved = weights.resolve("whisper-tiny", ensure_random_whisper_tiny(seed), allow_unverified=True)
        return resolved.record() | {"file": spec, "calibrated": False}
    return weights.resolve("whisper-tiny", spec, allow_unverified=allow_unverified).record()
