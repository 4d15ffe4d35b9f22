"""Official DICE-Talk release folders as checkpoints: check, load for sampling, and describe their provenance.

A release folder is laid out as upstream ships it (toto222/DICE-Talk README: ``checkpoints/DICE-Talk/``)::

    unet.pth  pose_guider.pth  audio_linear.pth  emo_model.pth  [emo/<emotion>.npy x 8]

The frozen parts come from the weights registry (or explicit paths, :class:`ReleaseSources`): the SVD-xt diffusers
folder (``svd-xt``), whisper-tiny (``whisper-tiny``), the emotion priors (``dicetalk-priors``, when the folder has
no ``emo/``). As upstream does (its ``dice_talk.py``), the UNet is built from the SVD-xt ``unet/`` folder, the
audio/emotion IP-adapter branches are added, and ``unet.pth`` is loaded over it: keys absent from the file keep the
SVD-xt values (logged); unexpected keys and shape mismatches are refused. The model size (``paper``, or ``tiny`` for
tests) is the one whose shapes the small release files have.

Every problem is found before any sampling, with a :class:`ReleaseFolderError` naming the file and what was
expected: a missing file (with its registry key), a truncated or non-state-dict ``.pth``, a tensor of the wrong
shape, a priors file not named after one of the eight MEAD emotions or whose content is not
``{'mu': (1, 256) float32}``.

The release entries have no published sha256: results made with them carry the label
``"release weights, hash not pinned"`` (or ``"release weights, hash pinned by the user"`` after
``python -m dicetalk_bench.weights verify KEY --pin``) in :func:`release_provenance`. The release generates one
frame per two 25-fps audio frames (``step: 2``), recorded as ``frame_stride: 2``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from dicetalk_bench import weights

from .checkpoint_kind import RELEASE_FILES
from .config import CONFIGS, ModelConfig
from .priors import PRIOR_DIM, PRIOR_EMOTIONS, PriorFormatError, load_prior_dict

logger = logging.getLogger(__name__)

PRIORS_SUBFOLDER = "emo"  # registry 'dicetalk-priors' filename; upstream keeps them in examples/emo/
RELEASE_FRAME_STRIDE = 2  # release config step: 2 -> 12.5 fps generation
LABEL_UNPINNED = "release weights, hash not pinned"
LABEL_USER_PIN = "release weights, hash pinned by the user"
LABEL_OFFICIAL = "release weights"


class ReleaseFolderError(ValueError):
    """A release folder (or a file it needs) cannot be used; the message names the file and what was expected."""


@dataclass(frozen=True)
class ReleaseSources:
    """Explicit locations of what a release folder does not hold (None: the weights registry's search order).

    ``svd``: SVD-xt diffusers folder; ``whisper``: whisper-tiny folder or ``random:SEED``; ``priors``: a folder of
    ``<emotion>.npy`` (used when the release folder has no ``emo/``).
    """

    svd: str | None = None
    whisper: str | None = None
    priors: str | None = None
    allow_unverified: bool = False

    @classmethod
    def from_weights(cls, paths: Mapping[str, str], allow_unverified: bool = False) -> "ReleaseSources":
        """From registry-key paths (``evaluate --weights svd-xt=DIR``)."""
        return cls(svd=paths.get("svd-xt"), whisper=paths.get("whisper-tiny"), priors=paths.get("dicetalk-priors"),
                   allow_unverified=allow_unverified)


def release_files(folder: str | os.PathLike) -> dict[str, Path]:
    """``{registry key: path}`` of the four release files; refuses a folder missing one, naming file and key."""
    folder = Path(folder)
    missing = [(key, name) for key, name in RELEASE_FILES.items() if not (folder / name).is_file()]
    if missing:
        listed = "; ".join(f"{name} (weights registry key {key})" for key, name in missing)
        raise ReleaseFolderError(
            f"release folder {folder} is incomplete: missing {listed}. A release folder holds "
            f"{', '.join(RELEASE_FILES.values())} as downloaded from {weights.get_entry('dicetalk-unet').source_url}")
    return {key: folder / name for key, name in RELEASE_FILES.items()}


def load_release_priors(folder: str | os.PathLike) -> dict[str, np.ndarray]:
    """The eight priors of a release priors folder, each checked to be exactly ``{'mu': (1, 256) float32}``.

    Refuses a ``.npy`` not named after a MEAD emotion, a missing emotion, and any other content, naming the file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ReleaseFolderError(f"emotion priors folder {folder}: no such folder")
    for path in sorted(folder.glob("*.npy")):
        if path.stem not in PRIOR_EMOTIONS:
            raise ReleaseFolderError(f"emotion prior {path}: file name {path.name!r} is not one of the eight MEAD "
                                     f"emotions ({', '.join(e + '.npy' for e in PRIOR_EMOTIONS)})")
    missing = [e for e in PRIOR_EMOTIONS if not (folder / f"{e}.npy").is_file()]
    if missing:
        raise ReleaseFolderError(f"emotion priors folder {folder}: missing {', '.join(e + '.npy' for e in missing)}")
    out = {}
    for emotion in PRIOR_EMOTIONS:
        path = folder / f"{emotion}.npy"
        try:
            content = load_prior_dict(path)
        except PriorFormatError as exc:
            raise ReleaseFolderError(f"{exc}; expected the release format {{'mu': (1, {PRIOR_DIM}) float32}}") from None
        mu = content["mu"]
        if set(content) != {"mu"} or mu.shape != (1, PRIOR_DIM) or mu.dtype != np.float32 or not np.isfinite(mu).all():
            got = {k: f"{v.shape} {v.dtype}" for k, v in content.items()}
            raise ReleaseFolderError(f"emotion prior {path}: content {got} is not the release format "
                                     f"{{'mu': (1, {PRIOR_DIM}) float32}} with finite values")
        out[emotion] = mu
    return out


def _read_state(resolved: weights.ResolvedWeights) -> dict[str, torch.Tensor]:
    try:
        state = weights.load_state_dict(resolved)
    except weights.WeightsError as exc:
        raise ReleaseFolderError(f"{resolved.path}: expected a PyTorch state dict (torch.save of a dict of tensors, "
                                 f"weights registry key {resolved.key}); the file may be truncated or corrupt "
                                 f"({exc})") from None
    bad = sorted(k for k, v in state.items() if not torch.is_tensor(v))
    if bad:
        raise ReleaseFolderError(f"{resolved.path}: entries {bad[:3]} are not tensors; expected a state dict")
    return state


def _shapes(module: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def _first_mismatch(state: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]],
                    optional: tuple[str, ...]) -> str | None:
    for name, shape in expected.items():
        if name not in state:
            if not name.startswith(optional):
                return f"has no tensor {name} (expected shape {shape})"
        elif tuple(state[name].shape) != shape:
            return f"tensor {name} has shape {tuple(state[name].shape)}, expected {shape}"
    extra = sorted(set(state) - set(expected))
    if extra:
        return f"has unexpected tensor {extra[0]}"
    return None


def infer_model_config(states: Mapping[str, Mapping[str, torch.Tensor]], files: Mapping[str, Path]) -> ModelConfig:
    """The model size whose PoseGuider, AudioProj and EmotionModel shapes the release files have.

    ``ReleaseFolderError`` names each file and tensor that does not fit the closest size (the one with the fewest
    mismatching files)."""
    from .official import COMPONENTS

    report: dict[str, list[str]] = {}
    for name, cfg in CONFIGS.items():
        problems = []
        for key in ("dicetalk-pose-guider", "dicetalk-audio-linear", "dicetalk-emo-model"):
            with torch.device("meta"):
                module = COMPONENTS[key][1](cfg)
            why = _first_mismatch(states[key], _shapes(module), COMPONENTS[key][2])
            if why:
                problems.append(f"{files[key]} {why} (registry key {key}, {name} size)")
        if not problems:
            return cfg
        report[name] = problems
    closest = min(report, key=lambda n: len(report[n]))
    raise ReleaseFolderError("the release files fit no known model size: " + "; ".join(report[closest])
                             + ". Re-download the file(s) named.")


def _svd_unet(svd_dir: Path, cfg: ModelConfig, device: torch.device | str):
    from .unet import DiceTalkUNet, add_ip_adapters, unet_kwargs

    unet_dir = svd_dir / "unet"
    if not unet_dir.is_dir():
        raise ReleaseFolderError(f"SVD-xt folder {svd_dir} has no unet/ subfolder; expected the diffusers layout of "
                                 "stabilityai/stable-video-diffusion-img2vid-xt (weights registry key svd-xt)")
    full = any(unet_dir.glob("diffusion_pytorch_model.safetensors")) or any(unet_dir.glob("diffusion_pytorch_model.bin"))
    variant = None if full or not any(unet_dir.glob("*.fp16.*")) else "fp16"
    unet = DiceTalkUNet.from_pretrained(unet_dir, torch_dtype=torch.float32, variant=variant)
    ours = unet_kwargs(cfg)
    for name in ("block_out_channels", "cross_attention_dim", "layers_per_block", "in_channels"):
        if tuple(np.atleast_1d(unet.config[name])) != tuple(np.atleast_1d(ours[name])):
            raise ReleaseFolderError(f"SVD-xt UNet {unet_dir} has {name}={unet.config[name]}, but the release files "
                                     f"are of the {cfg.name} size ({name}={ours[name]}); use the SVD-xt folder the "
                                     "release was fine-tuned from")
    add_ip_adapters(unet, cfg)
    return unet.to(device)


def load_unet_over_svd(unet: nn.Module, state: Mapping[str, torch.Tensor], source: Path) -> list[str]:
    """Load ``unet.pth`` over an SVD-xt UNet as upstream does (strict=False): returns the keys absent from the
    file, which keep their SVD-xt values. Unexpected keys and shape mismatches are refused naming the file."""
    ours = unet.state_dict()
    unexpected = sorted(k for k in state if k not in ours)
    wrong = sorted(k for k in state if k in ours and tuple(state[k].shape) != tuple(ours[k].shape))
    if unexpected or wrong:
        parts = []
        if wrong:
            parts.append("wrong shape: " + ", ".join(f"{k} {tuple(state[k].shape)}, expected {tuple(ours[k].shape)}"
                                                     for k in wrong[:3]))
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) such as {unexpected[0]}")
        raise ReleaseFolderError(f"{source} does not fit the SVD-xt UNet with the DICE-Talk IP-adapter branches "
                                 f"(weights registry key dicetalk-unet): " + "; ".join(parts))
    kept = sorted(k for k in ours if k not in state)
    if kept:
        logger.info("%s: %d key(s) absent, kept from the SVD-xt UNet (upstream loads it with strict=False)",
                    source, len(kept))
    unet.load_state_dict(dict(state), strict=False)
    return kept


def _label(records: Mapping[str, Mapping[str, Any]]) -> str:
    verified = {r.get("verified_by") for r in records.values()}
    if "unverified" in verified:
        return LABEL_UNPINNED
    if "user-pin" in verified:
        return LABEL_USER_PIN
    return LABEL_OFFICIAL


def release_provenance(folder: Path, components: Mapping[str, Mapping[str, Any]], priors: Mapping[str, Any],
                       unet_keys_from_svd: int) -> dict[str, Any]:
    """What results made with a release folder record about its weights (``kind``, ``label``, ``frame_stride``,
    the sha256 and verification of each file)."""
    return {"kind": "release", "label": _label(components), "folder": str(folder),
            "frame_stride": RELEASE_FRAME_STRIDE, "files": {k: dict(v) for k, v in components.items()},
            "priors": dict(priors), "unet_keys_from_svd": unet_keys_from_svd}


@dataclass
class ReleaseModel:
    """Everything a release folder yields: the network, frozen encoders, priors, records and provenance."""

    net: nn.Module
    encoders: Any
    priors: dict[str, np.ndarray]
    records: dict[str, Any]
    cfg: ModelConfig
    provenance: dict[str, Any] = field(default_factory=dict)


def _whisper_record(sources: ReleaseSources) -> dict[str, Any]:
    if sources.whisper:
        from dicetalk_bench.preprocessing.whisper import whisper_record

        return whisper_record(sources.whisper, allow_unverified=sources.allow_unverified)
    return weights.resolve("whisper-tiny", allow_unverified=sources.allow_unverified).record()


def load_release(folder: str | os.PathLike, sources: ReleaseSources = ReleaseSources(),
                 device: str | torch.device = "cpu", *, encoders: bool = True) -> ReleaseModel:
    """Check and load a release folder (see the module docstring); nothing is sampled before every check passed."""
    from .network import DiceTalkNetwork
    from .official import COMPONENTS, load_into
    from .svd import load_frozen_encoders

    folder = Path(folder)
    files = release_files(folder)
    resolved = {key: weights.resolve(key, path, allow_unverified=sources.allow_unverified)
                for key, path in files.items()}
    priors_dir = folder / PRIORS_SUBFOLDER if (folder / PRIORS_SUBFOLDER).is_dir() else sources.priors
    try:
        priors_resolved = weights.resolve("dicetalk-priors", priors_dir, allow_unverified=sources.allow_unverified)
    except weights.WeightsNotFoundError as exc:
        raise ReleaseFolderError(f"release folder {folder} has no {PRIORS_SUBFOLDER}/ priors folder and {exc}") from None
    priors = load_release_priors(priors_resolved.path)
    states = {key: _read_state(r) for key, r in resolved.items()}
    cfg = infer_model_config(states, files)
    svd = weights.resolve("svd-xt", sources.svd, allow_unverified=sources.allow_unverified)
    whisper = _whisper_record(sources)
    unet = _svd_unet(svd.path, cfg, device)
    kept = load_unet_over_svd(unet, states.pop("dicetalk-unet"), files["dicetalk-unet"])
    net = DiceTalkNetwork(cfg, unet=unet).to(device)
    for key, state in states.items():
        attr, _, optional = COMPONENTS[key]
        try:
            load_into(getattr(net, attr), state, str(files[key]), optional)
        except ValueError as exc:
            raise ReleaseFolderError(f"{exc} (weights registry key {key})") from None
    net.eval()
    components = {k: r.record() for k, r in resolved.items()}
    records = {"whisper": whisper, "svd": svd.record(), "official": components, "priors": priors_resolved.record()}
    provenance = release_provenance(folder, components, priors_resolved.record(), len(kept))
    enc = load_frozen_encoders(svd.path).to(device) if encoders else None
    logger.info("release folder %s: %s size, %s", folder, cfg.name, provenance["label"])
    return ReleaseModel(net, enc, priors, records, cfg, provenance)


def convert_release(folder: str | os.PathLike, out: str | os.PathLike,
                    sources: ReleaseSources = ReleaseSources()) -> Path:
    """Write release folder ``folder`` as a checkpoint folder ``out`` (see ``dicetalk_bench.convert_release``).

    The checkpoint holds the loaded network (the SVD-xt values included where ``unet.pth`` has no key), the eight
    priors, and a ``state.json`` of kind ``converted-release`` whose ``release`` entry keeps the provenance label.
    """
    import json
    import shutil

    from safetensors.torch import save_file

    from dicetalk_bench.config import to_dict

    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; choose a new folder for the converted checkpoint")
    rel = load_release(folder, sources, "cpu", encoders=False)
    tensors = {k: v.detach().cpu().contiguous() for k, v in rel.net.state_dict().items()}
    for name, mu in rel.priors.items():
        tensors[f"priors.{name}"] = torch.from_numpy(np.ascontiguousarray(mu, np.float32).reshape(1, -1))
    state = {"kind": "converted-release", "step": 0, "model": rel.cfg.name, "model_config": to_dict(rel.cfg),
             "config": {"model": rel.cfg.name, "resolution": rel.cfg.sample_resolution,
                        "frame_stride": RELEASE_FRAME_STRIDE},
             "records": rel.records, "release": rel.provenance, "history": []}
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        save_file(tensors, str(tmp / "model.safetensors"))
        (tmp / "state.json").write_text(json.dumps(state, indent=1, sort_keys=True, default=str))
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("converted %s into %s (%s size, %s)", folder, out, rel.cfg.name, rel.provenance["label"])
    return out
