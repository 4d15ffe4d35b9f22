"""Load the official DICE-Talk release files into our modules, and write random files in the same format.

Release files (HF ``EEEELY/DICE-Talk``) are plain ``torch.save`` state dicts whose keys equal our
parameter names (checked against the release's key lists in ``tests/data/official_keys_*.tsv``), so no key mapping is needed:

=====================  ======================  ============================================================
registry key           file                    module
=====================  ======================  ============================================================
dicetalk-unet          unet.pth                :class:`~.unet.DiceTalkUNet` incl. ``attn2.processor.to_{k,v}_ip``
dicetalk-pose-guider   pose_guider.pth         :class:`~.pose_guider.PoseGuider`
dicetalk-audio-linear  audio_linear.pth        :class:`~.audio_proj.AudioProjModel`
dicetalk-emo-model     emo_model.pth           :class:`~.emotion_bank.EmotionModel`
=====================  ======================  ============================================================

Loading is strict (every key present, no extra key, equal shapes), with one documented exception: upstream loads
``emo_model.pth`` with ``strict=False`` and it is unknown whether the file holds the classifier (never used at
inference), so missing ``classifier.*`` keys are allowed there and logged. Files are found and hash-checked by
:mod:`dicetalk_bench.weights`.

The ``write_random_*`` builders (registered with ``weights.register_random_builder`` below) write random *tiny*-size files by default (a
paper-size ``unet.pth`` is 6.5 GB); pass ``size="paper"`` for full-size files.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from dicetalk_bench import weights
from dicetalk_bench.fileutil import atomic_path

from .config import ModelConfig, get_model_config
from .network import DiceTalkNetwork, build_audio_proj, build_emotion_model, build_pose_guider
from .unet import build_unet

logger = logging.getLogger(__name__)

#: registry key -> (attribute of DiceTalkNetwork, builder, prefixes allowed to be missing from the file)
COMPONENTS: dict[str, tuple[str, Callable[[ModelConfig], nn.Module], tuple[str, ...]]] = {
    "dicetalk-unet": ("unet", build_unet, ()),
    "dicetalk-pose-guider": ("pose_guider", build_pose_guider, ()),
    "dicetalk-audio-linear": ("audio_proj", build_audio_proj, ()),
    "dicetalk-emo-model": ("emo_model", build_emotion_model, ("classifier.",)),
}


def _describe(names: list[str], limit: int = 5) -> str:
    head = ", ".join(names[:limit])
    return head + (f" and {len(names) - limit} more" if len(names) > limit else "")


def load_into(module: nn.Module, state: dict[str, torch.Tensor], source: str,
              optional_prefixes: tuple[str, ...] = ()) -> None:
    """Copy ``state`` into ``module`` strictly; ``ValueError`` naming ``source`` and the offending keys.

    Keys starting with one of ``optional_prefixes`` may be missing (they keep their current values).
    """
    ours = module.state_dict()
    missing = sorted(k for k in ours if k not in state and not k.startswith(optional_prefixes))
    unexpected = sorted(k for k in state if k not in ours)
    wrong = sorted(k for k in state if k in ours and tuple(state[k].shape) != tuple(ours[k].shape))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_describe(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected key(s): {_describe(unexpected)}")
    if wrong:
        problems.append("shape mismatch: " + _describe(
            [f"{k} {tuple(state[k].shape)} vs ours {tuple(ours[k].shape)}" for k in wrong]))
    if problems:
        raise ValueError(f"{source} does not fit {type(module).__name__}: " + "; ".join(problems)
                         + ". Is it the file of this component, built for this model size?")
    skipped = sorted(k for k in ours if k not in state)
    if skipped:
        logger.info("%s: %d optional key(s) absent, kept as initialised: %s", source, len(skipped),
                    _describe(skipped))
    module.load_state_dict(state, strict=False)


def load_component(key: str, module: nn.Module, path: str | os.PathLike | None = None, *,
                   allow_unverified: bool = False) -> weights.ResolvedWeights:
    """Resolve registry ``key`` (see :func:`dicetalk_bench.weights.resolve`) and load it into ``module``."""
    if key not in COMPONENTS:
        raise ValueError(f"unknown DICE-Talk component {key!r}; expected one of {sorted(COMPONENTS)}")
    resolved = weights.resolve(key, path, allow_unverified=allow_unverified)
    state = weights.load_state_dict(resolved)
    load_into(module, state, f"weights {key!r} ({resolved.path})", COMPONENTS[key][2])
    return resolved


def load_official_network(cfg: ModelConfig, paths: dict[str, str | os.PathLike] | None = None, *,
                          allow_unverified: bool = False, device: str | torch.device = "cpu"
                          ) -> tuple[DiceTalkNetwork, dict[str, dict]]:
    """Build the network for ``cfg`` and load the four release files; returns it and their ``record()`` s.

    ``paths`` maps registry keys to explicit files (else the registry's search order applies).
    The UNet is built on the meta device and materialised by the load, so only the file's memory is used.
    """
    paths = dict(paths or {})
    with torch.device("meta"):
        unet = build_unet(cfg)
    unet.to_empty(device=device)
    net = DiceTalkNetwork(cfg, unet=unet).to(device)
    records = {}
    for key, (attr, _, _) in COMPONENTS.items():
        records[key] = load_component(key, getattr(net, attr), paths.get(key),
                                      allow_unverified=allow_unverified).record()
    return net, records


def _write_random(key: str, target: Path, seed: int, size: str) -> None:
    cfg = get_model_config(size)
    torch.manual_seed(seed)
    module = COMPONENTS[key][1](cfg)
    with torch.no_grad():  # zero-initialised layers (PoseGuider conv_out) get values too, so loads are visible
        for p in module.parameters():
            if torch.count_nonzero(p) == 0:
                p.normal_(0.0, 0.02)
    state = {k: v.detach().clone().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(target) as tmp:
        torch.save(state, tmp)


def write_random_unet(target: Path, seed: int, size: str = "tiny") -> None:
    """Random ``unet.pth`` (state dict with the release keys) for model size ``size``."""
    _write_random("dicetalk-unet", Path(target), seed, size)


def write_random_pose_guider(target: Path, seed: int, size: str = "tiny") -> None:
    """Random ``pose_guider.pth``."""
    _write_random("dicetalk-pose-guider", Path(target), seed, size)


def write_random_audio_linear(target: Path, seed: int, size: str = "tiny") -> None:
    """Random ``audio_linear.pth``."""
    _write_random("dicetalk-audio-linear", Path(target), seed, size)


def write_random_emo_model(target: Path, seed: int, size: str = "tiny") -> None:
    """Random ``emo_model.pth``."""
    _write_random("dicetalk-emo-model", Path(target), seed, size)

weights.register_random_builder("dicetalk-unet", write_random_unet)
weights.register_random_builder("dicetalk-pose-guider", write_random_pose_guider)
weights.register_random_builder("dicetalk-audio-linear", write_random_audio_linear)
weights.register_random_builder("dicetalk-emo-model", write_random_emo_model)
