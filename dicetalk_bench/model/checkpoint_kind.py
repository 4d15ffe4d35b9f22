"""What kind of thing a ``--checkpoint`` path is, read from its files alone (no tensor is loaded).

Commands that need a generator checkpoint (``evaluate --checkpoint``, ``sample``) identify the path first and
refuse any other kind by name, before a model loads. :data:`CHECKPOINT_KINDS` is a table tried in order; a new kind
is one more :class:`CheckpointKind` (see :func:`register_kind`), e.g. an official release folder.

Kinds recognised here:

- ``generator-checkpoint``: ``<run>/checkpoints/step_N/`` of ``python -m dicetalk_bench.train`` (``state.json``
  with the model size, ``model.safetensors``);
- ``generator-run``: a ``train`` output folder whose ``checkpoints/latest`` names a generator checkpoint;
- ``emotion-embedder-run`` / ``emotion-embedder-checkpoint``: outputs of ``python -m dicetalk_bench.train_embedder``
  (``embedder.json``, or checkpoints whose ``state.json`` says ``"kind": "emotion-embedder"``);
- ``emotion-classifier``: a ``metrics train-emotion`` checkpoint (``.safetensors`` with its ``.json``);
- ``run-without-checkpoint``: a ``train`` output folder (``train_config.yaml``) with no checkpoint yet;
- ``release-folder``: an official DICE-Talk release folder (any of :data:`RELEASE_FILES`; the release loader then
  names a missing one), and ``convert_release``'s output, a generator checkpoint of kind ``converted-release``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dicetalk_bench.errors import SetupError

GENERATOR_CHECKPOINT = "generator-checkpoint"
GENERATOR_RUN = "generator-run"
EMBEDDER_RUN = "emotion-embedder-run"
EMBEDDER_CHECKPOINT = "emotion-embedder-checkpoint"
EMOTION_CLASSIFIER = "emotion-classifier"
RUN_WITHOUT_CHECKPOINT = "run-without-checkpoint"
RELEASE_FOLDER = "release-folder"
GENERATOR_KINDS: tuple[str, ...] = (GENERATOR_CHECKPOINT, GENERATOR_RUN, RELEASE_FOLDER)

#: The files that make a folder an official DICE-Talk release folder (upstream ``checkpoints/DICE-Talk/``), by
#: weights-registry key; the release's emotion priors live beside them in ``emo/`` (registry ``dicetalk-priors``).
RELEASE_FILES: dict[str, str] = {
    "dicetalk-unet": "unet.pth",
    "dicetalk-pose-guider": "pose_guider.pth",
    "dicetalk-audio-linear": "audio_linear.pth",
    "dicetalk-emo-model": "emo_model.pth",
}


class CheckpointKindError(SetupError):
    """A path that is not the kind of checkpoint a command needs (the message names what it is)."""


@dataclasses.dataclass(frozen=True)
class CheckpointKind:
    """One kind: ``matches(path)`` decides from the files; ``description`` completes "this is ...";
    ``generator_folder(path)`` gives the checkpoint folder a generator loads (generator kinds only)."""

    name: str
    description: str
    matches: Callable[[Path], bool]
    generator_folder: Callable[[Path], Path] | None = None


def _state(folder: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((folder / "state.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def _latest(run: Path) -> Path | None:
    pointer = run / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    return pointer.parent / pointer.read_text().strip()


def _is_generator_checkpoint(p: Path) -> bool:
    state = _state(p) if p.is_dir() else None
    return (state is not None and "model" in state
            and state.get("kind", "generator") in ("generator", "converted-release")
            and (p / "model.safetensors").is_file())


def is_release_folder(p: Path) -> bool:
    return p.is_dir() and not (p / "state.json").exists() and any((p / n).is_file() for n in RELEASE_FILES.values())


def _is_embedder_checkpoint(p: Path) -> bool:
    state = _state(p) if p.is_dir() else None
    return state is not None and state.get("kind") == "emotion-embedder"


def _is_generator_run(p: Path) -> bool:
    latest = _latest(p) if p.is_dir() else None
    return latest is not None and _is_generator_checkpoint(latest)


def _is_embedder_run(p: Path) -> bool:
    if not p.is_dir():
        return False
    latest = _latest(p)
    return (p / "embedder.json").is_file() or (p / "embedder_config.yaml").is_file() or (
        latest is not None and _is_embedder_checkpoint(latest))


def _is_emotion_classifier(p: Path) -> bool:
    if p.suffix not in (".safetensors", ".json") or not p.is_file():
        return False
    meta = p.with_suffix(".json")
    try:
        doc = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return isinstance(doc, dict) and "labels" in doc


def _is_run_without_checkpoint(p: Path) -> bool:
    return p.is_dir() and (p / "train_config.yaml").is_file() and _latest(p) is None


CHECKPOINT_KINDS: list[CheckpointKind] = [
    CheckpointKind(GENERATOR_CHECKPOINT, "a generator checkpoint from `train`", _is_generator_checkpoint,
                   generator_folder=lambda p: p),
    CheckpointKind(GENERATOR_RUN, "a generator training run from `train`", _is_generator_run,
                   generator_folder=lambda p: _latest(p)),  # type: ignore[arg-type, return-value]
    CheckpointKind(RELEASE_FOLDER, "an official DICE-Talk release folder", is_release_folder,
                   generator_folder=lambda p: p),
    CheckpointKind(EMBEDDER_CHECKPOINT, "an emotion-embedder checkpoint (from `train_embedder`)",
                   _is_embedder_checkpoint),
    CheckpointKind(EMBEDDER_RUN, "an emotion-embedder run (from `train_embedder`)", _is_embedder_run),
    CheckpointKind(EMOTION_CLASSIFIER, "an emotion classifier from `metrics train-emotion`", _is_emotion_classifier),
    CheckpointKind(RUN_WITHOUT_CHECKPOINT, "a `train` run that has written no checkpoint yet",
                   _is_run_without_checkpoint),
]


def register_kind(kind: CheckpointKind, *, first: bool = False) -> None:
    """Add a kind to the table (``first``: tried before the others). A name already present is refused."""
    if any(k.name == kind.name for k in CHECKPOINT_KINDS):
        raise ValueError(f"checkpoint kind {kind.name!r} is already registered")
    CHECKPOINT_KINDS.insert(0, kind) if first else CHECKPOINT_KINDS.append(kind)


def identify_checkpoint(path: str | os.PathLike) -> CheckpointKind | None:
    """The first kind in :data:`CHECKPOINT_KINDS` that ``path`` matches, or None."""
    p = Path(path)
    return next((k for k in CHECKPOINT_KINDS if k.matches(p)), None)


def generator_checkpoint(path: str | os.PathLike, *, command: str) -> Path:
    """The checkpoint folder a generator loads for ``path`` (a step folder or a run folder), or
    :class:`CheckpointKindError` naming what ``path`` is instead and what ``command`` needs."""
    p = Path(path)
    need = f"{command} needs a generator checkpoint from `train` (<run>/checkpoints/step_N or the run folder)"
    if not p.exists():
        raise CheckpointKindError(f"--checkpoint {p}: no such file or folder; {need}")
    kind = identify_checkpoint(p)
    if kind is None:
        raise CheckpointKindError(f"--checkpoint {p}: not a checkpoint this toolkit recognises; {need}")
    if kind.generator_folder is None:
        raise CheckpointKindError(f"--checkpoint {p}: this is {kind.description}; {need}")
    return kind.generator_folder(p)


def check_generator_files(folder: str | os.PathLike) -> None:
    """Cheap checks of a generator checkpoint folder before its model loads: the SVD folder it records exists."""
    state = _state(Path(folder)) or {}
    svd = (state.get("records") or {}).get("svd") or {}
    path = svd.get("file")
    if path and not Path(path).exists():
        raise CheckpointKindError(
            f"checkpoint {folder} was trained with the SVD folder {path}, which no longer exists; sampling loads "
            f"its VAE and image encoder from there: put the folder back (or fetch the same svd-xt weights there)")
