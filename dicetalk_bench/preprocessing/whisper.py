"""Whisper-tiny encoder for audio features: load a transformers folder, or build a random one of the same shape.

By default (spec ``None``) the ``whisper-tiny`` entry of the weights registry is resolved
(:func:`dicetalk_bench.weights.resolve`: ``$DICETALK_BENCH_WHISPER_TINY_WEIGHTS`` or
``$DICETALK_BENCH_WEIGHTS_DIR/whisper-tiny``); when it is absent the error names the download command and the
folder to put it in. ``--whisper DIR`` loads an ``openai/whisper-tiny`` transformers folder (``config.json`` +
``model.safetensors``) through the same resolver; only the encoder tensors are read. ``--whisper random:SEED``,
and only that, writes a randomly initialised folder of the same format with :func:`write_random_whisper_tiny`
(into a cache folder) and loads it through the same code; its record says ``calibrated: False`` and
``random_seed: SEED``. Every feature file stores :attr:`WhisperEncoderHandle.record` (key, file, sha256,
calibrated).

:func:`encoder_hidden_states` is the encoder forward used for the features: the same computation as
``WhisperEncoder(mel, output_hidden_states=True)`` (checked against it in the tests), except that the last
layer runs only for the states that are kept. Whisper needs a full 30 s window, but a 3 s MEAD utterance keeps
150 of its 1500 states: every layer but the last must still run on all 1500 positions (their keys and values
feed the next layer), while the last layer's queries, attention rows, feed-forward and final norm are needed
only for the kept rows. That removes about a fifth of the encoder's FLOPs for short clips.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dicetalk_bench.weights.random_weights import RANDOM_SPEC_PREFIX, random_spec_seed, register_random_builder

log = logging.getLogger(__name__)

#: openai/whisper-tiny shape (Whisper paper table 1: tiny = 4 layers, width 384, 6 heads).
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


def _encoder_layer(layer: Any, x: Any, rows: int | None = None) -> Any:
    """One pre-LN Whisper encoder layer on ``x`` (B, T, D); with ``rows`` only output rows ``[:rows]``.

    The operations and their order are transformers' ``WhisperEncoderLayer`` / ``WhisperAttention`` in eval
    mode (queries scaled by ``head_dim ** -0.5`` before the product, attention without a mask); keys and
    values always come from all T positions.
    """
    import torch.nn.functional as F

    att = layer.self_attn
    b, t, d = x.shape
    heads, head_dim = att.num_heads, att.head_dim
    h = layer.self_attn_layer_norm(x)
    hq, res = (h, x) if rows is None else (h[:, :rows], x[:, :rows])
    q = (att.q_proj(hq) * att.scaling).view(b, -1, heads, head_dim).transpose(1, 2).contiguous()
    k = att.k_proj(h).view(b, t, heads, head_dim).transpose(1, 2).contiguous()
    v = att.v_proj(h).view(b, t, heads, head_dim).transpose(1, 2).contiguous()
    a = F.scaled_dot_product_attention(q, k, v, scale=1.0).transpose(1, 2).reshape(b, -1, d)
    y = res + att.out_proj(a)
    return y + layer.fc2(layer.activation_fn(layer.fc1(layer.final_layer_norm(y))))


def encoder_hidden_states(encoder: Any, mel: Any, keep: int) -> Any:
    """All hidden states of a Whisper encoder for the first ``keep`` positions.

    ``mel`` (B, 80, 3000) float32 log-mel of 30 s windows -> (B, keep, L + 1, D) float32: the embedding
    output and the output of each of the L layers (the last after the final layer norm), as
    ``torch.stack(encoder(mel, output_hidden_states=True).hidden_states, 2)[:, :keep]``, with the last layer
    computed for the kept rows only. The values equal transformers' to float32 rounding: the states below
    the last layer are bit-identical, the last layer's products over fewer rows may use another BLAS
    kernel (differences of 1e-6 seen for 1-3 rows, none from 7 rows up). ``1 <= keep <= 1500`` (50 Hz
    states). Call under ``torch.inference_mode``.
    """
    import torch
    import torch.nn.functional as F

    n_pos = encoder.embed_positions.weight.shape[0]
    expected = n_pos * encoder.conv1.stride[0] * encoder.conv2.stride[0]
    if mel.ndim != 3 or mel.shape[-1] != expected:
        raise ValueError(f"whisper encoder input must be (B, n_mels, {expected}) log-mel (a 30 s window), "
                         f"got {tuple(mel.shape)}")
    if not 1 <= keep <= n_pos:
        raise ValueError(f"keep={keep}: expected 1..{n_pos} encoder states")
    x = F.gelu(encoder.conv2(F.gelu(encoder.conv1(mel)))).permute(0, 2, 1) + encoder.embed_positions.weight
    states = [x[:, :keep]]
    layers = list(encoder.layers)
    for layer in layers[:-1]:
        x = _encoder_layer(layer, x)
        states.append(x[:, :keep])
    states.append(encoder.layer_norm(_encoder_layer(layers[-1], x, rows=keep)))
    return torch.stack(states, dim=2)


def random_seed_of(spec: str | None) -> int | None:
    """The seed of a ``random:SEED`` spec, None for a folder path or the registry default (``None``).

    Raises ValueError for ``random:`` followed by anything but an integer (:func:`~dicetalk_bench.weights.
    random_weights.random_spec_seed`)."""
    return random_spec_seed(spec, option="--whisper")


def describe_spec(spec: str | None) -> str:
    """How ``spec`` is shown to a user: the registry default, a folder, or a random encoder."""
    if spec is None:
        return "whisper-tiny from the weights registry"
    return f"random whisper-tiny encoder ({spec}, uncalibrated)" if spec.startswith(RANDOM_SPEC_PREFIX) else f"whisper-tiny folder {spec}"


def _resolve(spec: str | None, allow_unverified: bool) -> tuple[Path, dict[str, Any]]:
    from dicetalk_bench import weights

    seed = random_seed_of(spec)
    if seed is not None:
        resolved = weights.resolve("whisper-tiny", ensure_random_whisper_tiny(seed), allow_unverified=True)
        return resolved.path, resolved.record() | {"file": spec, "calibrated": False, "random_seed": seed}
    resolved = weights.resolve("whisper-tiny", spec, allow_unverified=allow_unverified)
    return resolved.path, resolved.record()


_CACHE: dict[tuple[str | None, bool], WhisperEncoderHandle] = {}


def load_whisper(spec: str | None, *, allow_unverified: bool = False) -> WhisperEncoderHandle:
    """``spec``: None (the registry's whisper-tiny), a folder path, or ``random:SEED``; cached per process (Dask
    workers load it once). Raises :class:`dicetalk_bench.weights.WeightsError` when the weights are absent."""
    key = (spec, allow_unverified)
    if key in _CACHE:
        return _CACHE[key]
    folder, record = _resolve(spec, allow_unverified)
    handle = WhisperEncoderHandle(load_encoder_from_folder(folder), record)
    _CACHE[key] = handle
    return handle


def whisper_record(spec: str | None, *, allow_unverified: bool = False) -> dict[str, Any]:
    """What :func:`load_whisper` would record for ``spec``, without building the encoder (hash only)."""
    return _resolve(spec, allow_unverified)[1]

register_random_builder("whisper-tiny", write_random_whisper_tiny)
