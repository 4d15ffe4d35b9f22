"""Random weights of the right architecture, for tests and smoke runs: each module that loads a weights entry
registers the builder that writes random weights in that entry's official format (:func:`register_random_builder`);
:func:`make_random` calls it. The registry sits below the model and the metrics, so it names no builder itself."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from dicetalk_bench.fileutil import atomic_path

from .entries import _PRIOR_NAMES
from .errors import WeightsError
from .resolve import _exists
from .table import get_entry

if TYPE_CHECKING:
    import torch
    from torch import nn

RandomBuilder = Callable[[Path, int], None]
_Module = TypeVar("_Module", bound="nn.Module")
_BUILDERS: dict[str, RandomBuilder] = {}
_BUILDERS_LOCK = threading.Lock()


def register_random_builder(key: str, builder: RandomBuilder) -> RandomBuilder:
    """Register ``builder(target: Path, seed: int) -> None`` as the writer of random weights for the built-in entry
    ``key`` (called by the module that owns the entry, at import). Registering another function for a key that has
    one is refused; the same function again (a module imported twice) is fine. Returns ``builder``."""
    get_entry(key)  # an unknown key fails here, at import of the owner
    with _BUILDERS_LOCK:
        old = _BUILDERS.get(key)
        if old is not None and (old.__module__, old.__qualname__) != (builder.__module__, builder.__qualname__):
            raise WeightsError(f"weights {key!r} already has the random builder {old.__module__}.{old.__qualname__}")
        _BUILDERS[key] = builder
    return builder


def unregister_random_builder(key: str) -> None:
    """Forget the builder of ``key`` (e.g. one a test registered for a test-only entry); no-op when none."""
    with _BUILDERS_LOCK:
        _BUILDERS.pop(key, None)


def random_builder_keys() -> tuple[str, ...]:
    """The keys that have a registered random builder (sorted)."""
    with _BUILDERS_LOCK:
        return tuple(sorted(_BUILDERS))


def make_random(key: str, out_dir: str | os.PathLike, seed: int = 0) -> Path:
    """Write random weights for ``key`` as ``out_dir/<filename>`` in the official format; returns the path.

    Calls the builder the owning module registered (import that module first; ``python -m dicetalk_bench.weights
    make-random`` imports them all). The result is uncalibrated by construction (its hash never equals the official
    pin): use it through an explicit path or the env var with ``allow_unverified``.
    """
    entry = get_entry(key)
    with _BUILDERS_LOCK:
        builder = _BUILDERS.get(key)
    if builder is None:
        raise WeightsError(f"weights {key!r} has no random builder registered (component: {entry.component}); "
                           f"import the module that loads it first, or run python -m dicetalk_bench.weights "
                           f"make-random {key}")
    target = Path(out_dir) / entry.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    builder(target, int(seed))
    if not _exists(entry, target):
        raise WeightsError(f"random builder {builder.__module__}.{builder.__qualname__} did not write {target}")
    return target


RANDOM_SPEC_PREFIX = "random:"


def random_spec_seed(spec: str | os.PathLike | None, *, option: str = "weights") -> int | None:
    """The seed of a ``random:SEED`` weights spec (random, uncalibrated weights for smoke runs), or None for anything
    else (a folder or file path, or None for the registry's file).

    Raises ValueError, naming ``option`` (the flag or config key the spec came from), when ``random:`` is followed by
    anything but a non-negative integer (``random:abc``, ``random:``, ``random:-1``)."""
    if spec is None or not isinstance(spec, str) or not spec.startswith(RANDOM_SPEC_PREFIX):
        return None
    text = spec[len(RANDOM_SPEC_PREFIX):].strip()
    if not text.isdecimal():
        raise ValueError(f"{option} {spec!r}: expected random:SEED with an integer seed (0 or more)")
    return int(text)


def randomise_batchnorm_statistics_(model: _Module, generator: torch.Generator | None = None) -> _Module:
    """In place: the running statistics of every normalisation layer of ``model`` that tracks them (BatchNorm 1d/2d/3d,
    instance norm with ``track_running_stats``) drawn as mean ~ N(0, 0.1^2), var ~ U(0.5, 1.5), from ``generator``
    (None: torch's global generator), so that eval-mode outputs depend on them. Returns ``model``.

    Random builders call it: a freshly built network has mean 0 and var 1, which hides a loader that drops or
    mislabels these buffers."""
    import torch

    with torch.no_grad():
        for mod in model.modules():
            _randomise_statistics(mod, generator)
    return model


def randomise_conv_bn_(model: _Module, generator: torch.Generator | None = None) -> _Module:
    """In place, from ``generator`` (None: torch's global generator), module by module: Kaiming-normal convolution
    weights (ReLU gain); BatchNorm affine terms near identity (weight ~ U(0.8, 1.2), bias ~ N(0, 0.1^2)) and running
    statistics as :func:`randomise_batchnorm_statistics_`. Other parameters keep their initialisation. Returns
    ``model``."""
    import torch
    from torch import nn
    from torch.nn.modules.batchnorm import _BatchNorm
    from torch.nn.modules.conv import _ConvNd

    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, _ConvNd):
                nn.init.kaiming_normal_(mod.weight, nonlinearity="relu", generator=generator)
            elif isinstance(mod, _BatchNorm) and mod.affine:
                nn.init.uniform_(mod.weight, 0.8, 1.2, generator=generator)
                nn.init.normal_(mod.bias, 0.0, 0.1, generator=generator)
            _randomise_statistics(mod, generator)
    return model


def _randomise_statistics(mod: nn.Module, generator: torch.Generator | None) -> None:
    from torch.nn.modules.batchnorm import _NormBase

    if isinstance(mod, _NormBase) and mod.running_mean is not None and mod.running_var is not None:
        mod.running_mean.normal_(0.0, 0.1, generator=generator)
        mod.running_var.uniform_(0.5, 1.5, generator=generator)


def write_random_priors(target: Path, seed: int) -> None:
    """Random DICE-Talk emotion priors in the release format: ``target/<emotion>.npy``, each a pickled 0-d object
    array holding ``{'mu': (1, 256) float32}`` (std ≈ 0.86, like the released happy.npy)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in _PRIOR_NAMES:
        mu = (rng.standard_normal((1, 256)) * 0.86).astype(np.float32)
        with atomic_path(target / name) as tmp, open(tmp, "wb") as f:
            np.save(f, np.array({"mu": mu}, dtype=object), allow_pickle=True)


register_random_builder("dicetalk-priors", write_random_priors)
