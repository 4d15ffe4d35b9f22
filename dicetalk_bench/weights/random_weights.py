"""Random weights of the right architecture, for tests and smoke runs: each module that loads a weights entry
registers the builder that writes random weights in that entry's official format (:func:`register_random_builder`);
:func:`make_random` calls it. The registry sits below the model and the metrics, so it names no builder itself."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from dicetalk_bench.fileutil import atomic_path

from .entries import _PRIOR_NAMES
from .errors import WeightsError
from .resolve import _exists
from .table import get_entry

RandomBuilder = Callable[[Path, int], None]
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
