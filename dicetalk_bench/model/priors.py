"""DICE-Talk emotion priors (P-mode): read and write the release's ``.npy`` files without trusting pickles.

Release format (toto222/DICE-Talk a8a92b1 ``examples/emo/<emotion>.npy``): ``np.save`` of a 0-d
object array holding the dict ``{'mu': float32 array (1, 256)}``. Loading that with ``np.load(allow_pickle=True)``
would run whatever the pickle names, so :func:`load_prior` parses the ``.npy`` header itself and unpickles the
payload with :class:`PriorUnpickler`, which resolves only the three globals such a file contains (numpy's
``_reconstruct``, ``ndarray`` and ``dtype``) and refuses every other one. The result is then checked: a dict of
string keys to numeric arrays with a ``'mu'`` entry.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
from pathlib import Path
from typing import Mapping

import numpy as np

from dicetalk_bench.datasets import MEAD_EMOTIONS
from dicetalk_bench.fileutil import atomic_path

logger = logging.getLogger(__name__)

#: The eight MEAD emotions of the release priors, in file-name order.
PRIOR_EMOTIONS: tuple[str, ...] = MEAD_EMOTIONS
PRIOR_DIM = 256


class PriorFormatError(ValueError):
    """An emotion-prior file is not in the release format (or tries to run code); the message names the file."""


def _allowed_globals() -> dict[tuple[str, str], object]:
    from numpy._core import multiarray  # numpy >= 2; the pickles name the numpy 1.x path numpy.core.multiarray

    return {
        ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }


class PriorUnpickler(pickle.Unpickler):
    """Unpickler that resolves only numpy array reconstruction; any other global raises ``UnpicklingError``."""

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        allowed = _allowed_globals()
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in an emotion-prior file")
        return allowed[(module, name)]


def _read_header(f, path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(f)
        if version == (1, 0):
            return npy_format.read_array_header_1_0(f)
        if version in ((2, 0), (3, 0)):
            return npy_format.read_array_header_2_0(f)
    except ValueError as exc:
        raise PriorFormatError(f"emotion prior {path}: not a .npy file ({exc})") from None
    raise PriorFormatError(f"emotion prior {path}: unsupported .npy version {version}")


def load_prior_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read an emotion-prior ``.npy`` safely -> ``{'mu': (1, 256) float32, ...}``.

    Accepts the release format (pickled dict) and, for convenience, a plain numeric array (returned as
    ``{'mu': array}``). Raises :class:`PriorFormatError` naming the file for anything else, including pickles
    that reference any global other than numpy's array reconstruction.
    """
    path = Path(path)
    if not path.is_file():
        raise PriorFormatError(f"emotion prior {path}: file not found")
    with open(path, "rb") as f:
        shape, fortran, dtype = _read_header(f, path)
        if dtype.hasobject:
            payload = f.read()
            try:
                obj = PriorUnpickler(io.BytesIO(payload)).load()
            except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, ValueError, IndexError) as exc:
                raise PriorFormatError(f"emotion prior {path}: refused pickle payload ({exc})") from None
            if isinstance(obj, np.ndarray) and obj.dtype.hasobject and obj.shape == ():
                obj = obj.item()
            if not isinstance(obj, dict):
                raise PriorFormatError(f"emotion prior {path}: expected a pickled dict, got {type(obj).__name__}")
        else:
            f.seek(0)
            obj = {"mu": np.load(f, allow_pickle=False)}
    out: dict[str, np.ndarray] = {}
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, np.ndarray) or value.dtype.hasobject \
                or value.dtype.kind not in "fiu":
            raise PriorFormatError(f"emotion prior {path}: entry {key!r} is not a numeric array")
        out[key] = value
    if "mu" not in out:
        raise PriorFormatError(f"emotion prior {path}: no 'mu' entry (keys: {sorted(out)})")
    return out


def load_prior(path: str | os.PathLike, dim: int = PRIOR_DIM) -> np.ndarray:
    """The prior mean ``mu`` of a release-format file as (1, dim) float32 (a (dim,) array is reshaped)."""
    mu = load_prior_dict(path)["mu"].astype(np.float32)
    if mu.size != dim:
        raise PriorFormatError(f"emotion prior {path}: 'mu' has shape {mu.shape}, expected (1, {dim})")
    if not np.isfinite(mu).all():
        raise PriorFormatError(f"emotion prior {path}: 'mu' contains NaN or infinity")
    return mu.reshape(1, dim)


def load_priors(folder: str | os.PathLike, names: tuple[str, ...] = PRIOR_EMOTIONS) -> dict[str, np.ndarray]:
    """``{emotion: (1, 256) float32}`` from ``folder/<emotion>.npy`` for each name (all must exist)."""
    folder = Path(folder)
    missing = [n for n in names if not (folder / f"{n}.npy").is_file()]
    if missing:
        raise PriorFormatError(f"emotion priors folder {folder}: missing {', '.join(n + '.npy' for n in missing)}")
    return {n: load_prior(folder / f"{n}.npy") for n in names}


def save_prior(path: str | os.PathLike, mu: np.ndarray, extra: Mapping[str, np.ndarray] | None = None) -> Path:
    """Write ``{'mu': (1, 256) float32, **extra}`` in the release format (pickled 0-d object array), atomically."""
    mu = np.asarray(mu, dtype=np.float32).reshape(1, -1)
    payload = {"mu": mu}
    for k, v in (extra or {}).items():
        payload[k] = np.asarray(v, dtype=np.float32)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.array(payload, dtype=object), allow_pickle=True)
    logger.debug("wrote emotion prior %s (keys %s)", path, sorted(payload))
    return Path(path)


def save_priors(folder: str | os.PathLike, priors: Mapping[str, np.ndarray]) -> Path:
    """Write ``folder/<emotion>.npy`` for each entry of ``priors``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, mu in priors.items():
        save_prior(folder / f"{name}.npy", mu)
    return folder
