"""Self-describing training checkpoints: safetensors for tensors, JSON for everything else, written atomically.

Layout of ``<run>/checkpoints/step_<NNNNNNN>/``:

- ``model.safetensors``: the trainable network (``unet.*``, ``pose_guider.*``, ``audio_proj.*``, ``emo_model.*``;
  each sub-dict has the release keys) and the emotion priors as ``priors.<emotion>`` (1, 256);
- ``optimizer.safetensors``: every tensor of the optimiser state, flattened as ``state.<param>.<name>``;
- ``ema.safetensors`` (only when the run keeps one): the EMA of each trainable parameter, by parameter name;
- ``state.json``: step, resolved training config, optimiser hyper-parameters and scalar state, loss history,
  and the records (key, sha256, calibrated) of the Whisper and SVD weights the run used.

The folder is written under a temporary name and renamed, then ``<run>/checkpoints/latest`` is rewritten
atomically, so a killed run leaves either the previous or the new checkpoint, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from dicetalk_bench.fileutil import atomic_write_bytes


def _flatten_optimizer(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, scalars = {}, {}
    for pid, entries in state["state"].items():
        for name, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for key, value in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def step_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:07d}"


def save_checkpoint(run_dir: str | os.PathLike, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    state: Mapping[str, Any], priors: Mapping[str, np.ndarray] | None = None,
                    ema: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Write checkpoint ``step`` of ``run_dir`` atomically and point ``latest`` at it; returns its folder."""
    from safetensors.torch import save_file

    final = step_dir(Path(run_dir), step)
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for name, mu in (priors or {}).items():
        weights[f"priors.{name}"] = torch.from_numpy(np.asarray(mu, np.float32).reshape(1, -1))
    save_file(weights, str(tmp / "model.safetensors"))
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    if ema is not None:
        save_file({k: v.detach().cpu().contiguous() for k, v in ema.items()}, str(tmp / "ema.safetensors"))
    doc = dict(state)
    doc.update(step=step, optimizer=opt_meta)
    (tmp / "state.json").write_text(json.dumps(doc, indent=1, sort_keys=True, default=str))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_bytes(final.parent / "latest", final.name.encode())
    return final


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The folder named by ``<run>/checkpoints/latest``, or None when the run has no checkpoint yet."""
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    folder = pointer.parent / pointer.read_text().strip()
    if not (folder / "state.json").is_file():
        raise FileNotFoundError(f"{pointer} names {folder}, which has no state.json; the checkpoint is damaged")
    return folder


@dataclass(frozen=True)
class Checkpoint:
    folder: Path
    state: dict[str, Any]
    model: dict[str, torch.Tensor]
    priors: dict[str, np.ndarray]
    ema: dict[str, torch.Tensor] | None = None  # EMA of the trainable weights, when the run kept one

    @property
    def step(self) -> int:
        return int(self.state["step"])


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file; a truncated or corrupt one is a ValueError naming it (a set-up error, not a crash)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except SafetensorError as exc:
        raise ValueError(f"checkpoint file {path} cannot be read ({exc}); it is truncated or not a safetensors "
                         "file: copy it again or use another checkpoint") from None


def read_checkpoint(folder: str | os.PathLike) -> Checkpoint:
    """Model tensors (without priors), priors and state.json of a checkpoint folder."""
    from safetensors.torch import load_file

    folder = Path(folder)
    for name in ("model.safetensors", "state.json"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"checkpoint {folder} has no {name}")
    tensors = _load_tensors(folder / "model.safetensors")
    priors = {k[len("priors."):]: v.numpy() for k, v in tensors.items() if k.startswith("priors.")}
    model = {k: v for k, v in tensors.items() if not k.startswith("priors.")}
    ema = _load_tensors(folder / "ema.safetensors") if (folder / "ema.safetensors").is_file() else None
    return Checkpoint(folder, json.loads((folder / "state.json").read_text()), model, priors, ema)


def load_optimizer_state(folder: str | os.PathLike, optimizer: torch.optim.Optimizer) -> None:
    """Restore ``optimizer`` from a checkpoint folder (tensors moved to the parameters' device)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    meta = json.loads((folder / "state.json").read_text())["optimizer"]
    optimizer.load_state_dict(_unflatten_optimizer(load_file(str(folder / "optimizer.safetensors")), meta))
