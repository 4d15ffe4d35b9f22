"""Finding weights offline (resolution order in the package docstring), checking their hash, loading them
safely, and exposing verified files to third-party code through a private torch.hub cache."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .entry import WeightsEntry
from .errors import WeightsError, WeightsHashMismatchError, WeightsNotFoundError
from .hashing import _hash_of, pin_calibrates, read_pins
from .locations import WEIGHTS_DIR_ENV, pins_path, private_cache_root, torch_hub_checkpoints_dir, weights_dir
from .table import get_entry

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ResolvedWeights:
    """A located, hash-checked weights file or folder.

    ``calibrated`` is True when ``sha256`` equals the official pinned hash (``pinned_by="published"``), or a hash
    the user pinned as verified with ``verify --pin`` (``pinned_by="user"``: labelled "pinned by user" in reports,
    since the hash is not a published one). ``verified_by`` says what the hash was checked against:
    ``"official"``, ``"user-pin"`` (pins.json) or ``"unverified"`` (accepted with ``allow_unverified``).
    """

    key: str
    path: Path
    sha256: str
    calibrated: bool
    verified_by: str = "official"
    pinned_by: str | None = "published"  # "published" | "user" | None (unverified)

    def record(self) -> dict[str, Any]:
        """What every result file and checkpoint stores about the weights it used."""
        return {"key": self.key, "file": str(self.path), "sha256": self.sha256, "calibrated": self.calibrated,
                "verified_by": self.verified_by, "pinned_by": self.pinned_by}


@dataclasses.dataclass(frozen=True)
class _Place:
    label: str          # "explicit path", "env DICETALK_BENCH_X_WEIGHTS", "weights dir", "torch hub cache"
    candidates: tuple[Path, ...]
    official: bool
    decisive: bool      # set by the user: a miss there is an error, not a fall-through


def _candidates_in(entry: WeightsEntry, p: Path) -> tuple[Path, ...]:
    """A user path may be the file itself or, for a file entry, a folder holding it under a canonical name."""
    if entry.kind == "file" and p.is_dir():
        return tuple(p / n for n in entry.all_filenames)
    return (p,)


def _places(entry: WeightsEntry, path: str | os.PathLike | None) -> list[_Place]:
    places: list[_Place] = []
    if path is not None:
        p = Path(path).expanduser()
        places.append(_Place(f"explicit path {p}", _candidates_in(entry, p), official=False, decisive=True))
        return places
    env_value = os.environ.get(entry.env_var)
    if env_value:
        p = Path(env_value).expanduser()
        places.append(_Place(f"env {entry.env_var}={p}", _candidates_in(entry, p), official=False, decisive=True))
        return places
    wdir = weights_dir()
    places.append(_Place(f"{WEIGHTS_DIR_ENV} {wdir}", tuple(wdir / n for n in entry.all_filenames),
                         official=True, decisive=False))
    if entry.torch_hub:
        hub = torch_hub_checkpoints_dir()
        places.append(_Place(f"torch hub cache {hub}", tuple(hub / n for n in entry.all_filenames),
                             official=True, decisive=False))
    return places


def _exists(entry: WeightsEntry, p: Path) -> bool:
    return p.is_dir() if entry.kind == "folder" else p.is_file()


def _searched_text(entry: WeightsEntry, places: Sequence[_Place]) -> str:
    lines = [f"  - {pl.label}: " + ", ".join(str(c) for c in pl.candidates) for pl in places]
    if places and places[0].label.startswith(WEIGHTS_DIR_ENV):
        lines.insert(0, f"  - explicit path: none given; env {entry.env_var}: unset")
    return "\n".join(lines)


def _not_found(entry: WeightsEntry, places: Sequence[_Place], extra: str = "") -> WeightsNotFoundError:
    expected = entry.sha256 or "not pinned"
    msg = (f"weights {entry.key!r} ({entry.kind} {entry.filename}, sha256 {expected}) not found{extra}; looked in:\n"
           f"{_searched_text(entry, places)}\n"
           f"To get it, {entry.fetch_hint()} (or set {entry.env_var} to its path). Licence: {entry.licence}.")
    return WeightsNotFoundError(msg)


def _check(entry: WeightsEntry, found: Path, place: _Place, allow_unverified: bool) -> ResolvedWeights:
    try:
        actual = _hash_of(entry, found)
    except WeightsNotFoundError as exc:  # a folder with listed files missing
        raise WeightsNotFoundError(f"weights {entry.key!r}: {exc}; {entry.fetch_hint()}") from exc
    if entry.sha256 is not None:
        if actual == entry.sha256:
            return ResolvedWeights(entry.key, found, actual, True, "official")
        expected, against = entry.sha256, "the official sha256"
    else:
        user = read_pins().get(entry.key, {})
        expected = user.get("sha256") if isinstance(user, dict) else None
        if expected == actual:
            return ResolvedWeights(entry.key, found, actual, pin_calibrates(user), "user-pin", "user")
        against = f"your pin in {pins_path()}" if expected else None
    if place.official and expected is not None:
        raise WeightsHashMismatchError(
            f"weights {entry.key!r}: {found} has sha256 {actual} but {against} is {expected}; the file is corrupt, "
            f"truncated or a different release. Replace it ({entry.fetch_hint()}), or to use your own file on "
            f"purpose pass its path (or set {entry.env_var}) with --allow-unverified (results are then marked "
            f"uncalibrated).")
    if allow_unverified:
        logger.warning("using unverified weights %s for %r (sha256 %s): results are marked uncalibrated",
                       found, entry.key, actual)
        return ResolvedWeights(entry.key, found, actual, False, "unverified", None)
    if expected is not None:
        raise WeightsHashMismatchError(
            f"weights {entry.key!r}: {found} has sha256 {actual} but {against} is {expected}; pass "
            f"allow_unverified=True (CLI --allow-unverified) to use it anyway, marked uncalibrated.")
    raise WeightsHashMismatchError(
        f"weights {entry.key!r}: {found} (sha256 {actual}) cannot be verified: no public sha256 is pinned for "
        f"{entry.filename}. Record it with `python -m dicetalk_bench.weights verify {entry.key} --pin` if you trust "
        f"the file, or pass allow_unverified=True (CLI --allow-unverified); results are marked uncalibrated.")


def resolve(key: str, path: str | os.PathLike | None = None, *, allow_unverified: bool = False) -> ResolvedWeights:
    """Find the weights for ``key`` offline and check their sha256.

    Order: ``path`` > env ``DICETALK_BENCH_<KEY>_WEIGHTS`` > ``$DICETALK_BENCH_WEIGHTS_DIR/<filename>`` >
    ``$TORCH_HOME/hub/checkpoints/<filename>`` (torch_hub entries). A file at an official location (the last two)
    whose hash differs from the pin is refused; a user's file (path or env var) that is unpinned or differs is
    accepted only with ``allow_unverified`` and marked uncalibrated.

    Raises :class:`WeightsNotFoundError` (naming key, file, expected hash, every place searched and how to get it),
    :class:`WeightsHashMismatchError` or :class:`UnknownWeightsKeyError`.
    """
    entry = get_entry(key)
    places = _places(entry, path)
    for place in places:
        for cand in place.candidates:
            if _exists(entry, cand):
                return _check(entry, cand, place, allow_unverified)
        if place.decisive:
            break
    raise _not_found(entry, places)


def find(key: str, path: str | os.PathLike | None = None) -> Path | None:
    """Where :func:`resolve` would look first and find something, without hashing (None if nothing is there)."""
    entry = get_entry(key)
    for place in _places(entry, path):
        for cand in place.candidates:
            if _exists(entry, cand):
                return cand
        if place.decisive:
            return None
    return None


def require(key: str, path: str | os.PathLike | None = None, *, hint: str = "") -> Path:
    """Where ``key`` is (as :func:`find`, no hashing), or the :class:`WeightsNotFoundError` that :func:`resolve`
    would raise (every place searched, how to get it) with ``hint`` appended: a cheap check before a model loads."""
    found = find(key, path)
    if found is not None:
        return found
    entry = get_entry(key)
    raise WeightsNotFoundError(str(_not_found(entry, _places(entry, path))) + hint)


# Loading
def _recheck(resolved: ResolvedWeights) -> None:
    """Refuse a file that changed since it was resolved (cheap: the hash cache keys on size and mtime)."""
    entry = get_entry(resolved.key)
    actual = _hash_of(entry, resolved.path)
    if actual != resolved.sha256:
        raise WeightsHashMismatchError(
            f"weights {resolved.key!r}: {resolved.path} changed after it was resolved "
            f"(sha256 {actual}, resolved as {resolved.sha256}); resolve it again")


def load_state_dict(resolved: ResolvedWeights, *, subkey: str | None = None) -> dict[str, Any]:
    """Load a state dict on the CPU without running pickled code.

    ``.safetensors`` files go through safetensors; everything else through ``torch.load(weights_only=True)``.
    ``subkey`` unwraps checkpoints saved as ``{subkey: state_dict, ...}``. Whole pickled models are refused: run
    ``python -m dicetalk_bench.weights convert KEY --trust-pickle IN OUT`` once.
    """
    if not isinstance(resolved, ResolvedWeights):
        raise TypeError(f"load_state_dict needs a ResolvedWeights from resolve(), not {type(resolved).__name__}")
    entry = get_entry(resolved.key)
    path = resolved.path
    if entry.kind == "folder" or path.is_dir():
        raise WeightsError(f"weights {resolved.key!r} is a folder ({path}); load it with from_pretrained(path)")
    _recheck(resolved)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return dict(load_file(str(path), device="cpu"))
    if entry.pickled:
        raise WeightsError(
            f"weights {resolved.key!r}: {path} is a whole pickled model, which cannot be loaded safely; convert it "
            f"once with `python -m dicetalk_bench.weights convert {resolved.key} --trust-pickle {path} OUT.safetensors`")
    import pickle

    import torch

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise WeightsError(
            f"weights {resolved.key!r}: cannot load {path} as a state dict with weights_only=True ({exc}); if it is a "
            f"whole pickled model, convert it with `python -m dicetalk_bench.weights convert {resolved.key} "
            f"--trust-pickle {path} OUT.safetensors`") from exc
    if subkey is not None:
        if not isinstance(obj, Mapping) or subkey not in obj:
            raise WeightsError(f"weights {resolved.key!r}: {path} has no top-level key {subkey!r}")
        obj = obj[subkey]
    if not isinstance(obj, Mapping):
        raise WeightsError(f"weights {resolved.key!r}: {path} holds a {type(obj).__name__}, not a state dict")
    return dict(obj)


def load_torchscript(resolved: ResolvedWeights, map_location: str = "cpu") -> Any:
    """``torch.jit.load`` of a TorchScript file, only after its hash was checked by :func:`resolve`."""
    if not isinstance(resolved, ResolvedWeights):
        raise TypeError("load_torchscript needs a ResolvedWeights from resolve() (the hash check comes first)")
    _recheck(resolved)
    import warnings

    import torch

    with warnings.catch_warnings():
        # TorchScript is deprecated upstream, but the StyleGAN-V I3D is only published in that format
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.*")
        return torch.jit.load(str(resolved.path), map_location=map_location)


# torch.hub cache for third-party code (face-alignment, lpips/torchvision)
def torch_hub_dir_for(keys: Iterable[str], *, paths: Mapping[str, str | os.PathLike] | None = None,
                      allow_unverified: bool = False) -> Path:
    """A private TORCH_HOME whose ``hub/checkpoints`` exposes exactly the resolved, hash-checked files for ``keys``.

    Third-party code that only looks in the torch.hub cache (face-alignment's FAN and S3FD, torchvision's AlexNet in
    lpips) then finds the verified files and nothing else. Files are exposed as symlinks under their canonical
    name, in a folder named after the resolved hashes. Use :func:`use_torch_home` to set it for one call.
    """
    paths = dict(paths or {})
    resolved = [resolve(k, paths.get(k), allow_unverified=allow_unverified) for k in keys]
    if not resolved:
        raise WeightsError("torch_hub_dir_for needs at least one key")
    for r in resolved:
        if get_entry(r.key).kind != "file":
            raise WeightsError(f"weights {r.key!r} is a folder and cannot be exposed in a torch.hub cache")
    tag = hashlib.sha256("".join(f"{r.key} {r.path.resolve()} {r.sha256}\n"
                                 for r in sorted(resolved, key=lambda r: r.key)).encode()).hexdigest()[:16]
    home = private_cache_root() / tag
    ckpt = home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    for r in resolved:
        link = ckpt / get_entry(r.key).filename
        target = r.path.resolve()
        if (link.is_symlink() and Path(os.readlink(link)) == target) or (
                link.is_file() and not link.is_symlink() and os.path.samefile(link, target)):
            continue
        tmp = ckpt / f".{link.name}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            os.symlink(target, tmp)
        except OSError:  # no symlinks (some Windows setups): a hard link shares the checked bytes too
            os.link(target, tmp)
        os.replace(tmp, link)
    return home


@contextlib.contextmanager
def use_torch_home(keys: Iterable[str], **kwargs: Any) -> Iterator[Path]:
    """Set TORCH_HOME (and torch.hub's dir) to :func:`torch_hub_dir_for` ``(keys)`` inside the block, then restore."""
    home = torch_hub_dir_for(keys, **kwargs)
    import torch.hub

    old_env = os.environ.get("TORCH_HOME")
    # torch.hub keeps an explicit set_dir() in a module global; None means "follow $TORCH_HOME", restore exactly that
    old_dir = getattr(torch.hub, "_hub_dir", None)
    os.environ["TORCH_HOME"] = str(home)
    torch.hub.set_dir(str(home / "hub"))
    try:
        yield home
    finally:
        if old_env is None:
            os.environ.pop("TORCH_HOME", None)
        else:
            os.environ["TORCH_HOME"] = old_env
        if hasattr(torch.hub, "_hub_dir"):
            torch.hub._hub_dir = old_dir
        elif old_dir is not None:
            torch.hub.set_dir(old_dir)
