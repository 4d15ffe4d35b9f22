"""Fetch (the only network access in the package; never called at run time), conversion of pickled models, and
verification of what is present (used by the CLI)."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from dicetalk_bench.fileutil import atomic_path, atomic_write_bytes

from .entries import _WHEEL_PIP_FLAGS
from .errors import WeightsError, WeightsHashMismatchError, WeightsNotFoundError
from .hashing import _hash_of, file_sha256, pin, pin_calibrates, read_pins
from .locations import weights_dir
from .resolve import find, resolve
from .table import get_entry

logger = logging.getLogger(__name__)
_CHUNK = 1 << 20


def download(url: str, target: str | os.PathLike, sha256: str | None, *, timeout_s: float = 60.0) -> str:
    """Stream ``url`` to a temporary file beside ``target``, check its sha256, then rename it onto ``target``.

    With ``sha256`` None the hash is only computed. A mismatch deletes the temporary file and raises
    :class:`WeightsHashMismatchError`; nothing is left under ``target``. Returns the hex sha256.
    """
    target = Path(target)
    h = hashlib.sha256()
    with atomic_path(target) as tmp:
        req = urllib.request.Request(url, headers={"User-Agent": "dicetalk_bench-weights"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s) as resp, open(tmp, "wb") as f:
                for block in iter(lambda: resp.read(_CHUNK), b""):
                    h.update(block)
                    f.write(block)
        except OSError as exc:  # URLError, HTTPError and timeouts are OSErrors
            raise WeightsError(f"cannot download {url} to {target}: {exc}") from exc
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256:
            raise WeightsHashMismatchError(
                f"download of {url} has sha256 {digest}, expected {sha256}; nothing was written to {target}")
    return digest


def download_wheel(spec: str, dest_dir: str | os.PathLike) -> Path:
    """``python -m pip download`` one binary wheel (cp311, manylinux_2_28_x86_64) into ``dest_dir``; its path.

    The platform flags make pip pick the same wheel on any host, so the member hashes are always the pinned ones.
    """
    dest_dir = Path(dest_dir)
    cmd = [sys.executable, "-m", "pip", "download", *_WHEEL_PIP_FLAGS, "--disable-pip-version-check",
           "--dest", str(dest_dir), spec]
    logger.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(dest_dir.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise WeightsError(f"pip download {spec} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return wheels[0]


def extract_from_wheel(wheel: str | os.PathLike, member: str, target: str | os.PathLike,
                       sha256: str | None) -> str:
    """Copy ``member`` out of the zip ``wheel`` to ``target`` (atomic), after checking its sha256."""
    wheel = Path(wheel)
    try:
        with zipfile.ZipFile(wheel) as zf:
            data = zf.read(member)
    except KeyError:
        raise WeightsNotFoundError(f"{wheel} has no member {member}") from None
    except zipfile.BadZipFile as exc:
        raise WeightsError(f"{wheel} is not a valid wheel ({exc})") from exc
    digest = hashlib.sha256(data).hexdigest()
    if sha256 is not None and digest != sha256:
        raise WeightsHashMismatchError(
            f"{member} in {wheel} has sha256 {digest}, expected {sha256}; nothing was written to {target}")
    atomic_write_bytes(target, data)
    return digest


def fetch(keys: str | Iterable[str], *, force: bool = False, allow_unverified: bool = False,
          wheel: str | os.PathLike | None = None) -> list[Path]:
    """Download the files for ``keys`` into :func:`weights_dir`, hash-checked; a no-op for files already valid.

    ``wheel`` is a local copy of the wheel for wheel-sourced entries (skips pip). Unpinned entries are downloaded
    only with ``allow_unverified``. Entries without an automatic source raise :class:`WeightsError` with the
    manual download location.
    """
    keys = [keys] if isinstance(keys, str) else list(keys)
    entries = [get_entry(k) for k in keys]
    out: list[Path] = []
    wheel_cache: dict[str, Path] = {}
    with contextlib.ExitStack() as stack:
        for entry in entries:
            target = weights_dir() / entry.filename
            if not (entry.download_url or entry.wheel):
                raise WeightsError(f"weights {entry.key!r} has no automatic source; {entry.fetch_hint()}")
            if entry.sha256 is None and not allow_unverified:
                raise WeightsError(
                    f"weights {entry.key!r} has no pinned sha256, so a download cannot be verified; pass "
                    f"--allow-unverified to fetch it anyway and then `verify {entry.key} --pin`")
            if target.is_file() and not force:
                if entry.sha256 is None or file_sha256(target) == entry.sha256:
                    logger.info("%s already present%s: %s", entry.key,
                                " and valid" if entry.sha256 else " (unpinned)", target)
                    out.append(target)
                    continue
                logger.warning("%s: %s has the wrong sha256; fetching it again", entry.key, target)
            if entry.download_url:
                logger.info("downloading %s from %s", entry.key, entry.download_url)
                download(entry.download_url, target, entry.sha256)
            else:
                assert entry.wheel is not None
                spec, member = entry.wheel
                if wheel is not None:
                    wheel_path = Path(wheel)
                elif spec in wheel_cache:
                    wheel_path = wheel_cache[spec]
                else:
                    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dtb-wheel-")))
                    wheel_path = wheel_cache[spec] = download_wheel(spec, tmp)
                extract_from_wheel(wheel_path, member, target, entry.sha256)
            logger.info("%s -> %s", entry.key, target)
            out.append(target)
    return out


def convert(key: str, src: str | os.PathLike, out: str | os.PathLike, *, trust_pickle: bool = False) -> Path:
    """Re-save a whole pickled model (or pickled checkpoint) as a safetensors state dict.

    Unpickling runs code from the file, so it requires ``trust_pickle=True``; the source's hash and calibration
    are written into the safetensors metadata, and the output's hash is recorded as the user pin for ``key`` when
    the entry has no official hash, so :func:`resolve` accepts the converted file.
    """
    if not trust_pickle:
        raise WeightsError("convert unpickles arbitrary code: pass --trust-pickle (trust_pickle=True) only for a "
                           "file from a source you trust")
    entry = get_entry(key)
    src_resolved = resolve(key, src, allow_unverified=True)
    import torch
    from safetensors.torch import save_file

    obj = torch.load(str(src_resolved.path), map_location="cpu", weights_only=False)
    if hasattr(obj, "state_dict") and callable(obj.state_dict):
        obj = obj.state_dict()
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"convert {key}: {src} holds neither a model nor a state dict of tensors")
    tensors = {k: v.detach().contiguous().clone() for k, v in obj.items()}
    out = Path(out)
    meta = {"dicetalk_bench.source_key": key, "dicetalk_bench.source_sha256": src_resolved.sha256,
            "dicetalk_bench.source_calibrated": str(src_resolved.calibrated)}
    with atomic_path(out, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    if entry.sha256 is None:
        pin(key, file_sha256(out), out, calibrated=src_resolved.calibrated, by="convert",
            source_sha256=src_resolved.sha256)
    return out


# Verify (used by the CLI)
@dataclasses.dataclass(frozen=True)
class VerifyResult:
    key: str
    status: str  # calibrated | user-pinned | user-pinned-uncalibrated | unpinned | mismatch | missing | incomplete
    path: Path | None
    sha256: str | None
    detail: str = ""


def verify(key: str, path: str | os.PathLike | None = None) -> VerifyResult:
    """Hash what is present for ``key`` (at ``path``, else where :func:`resolve` would find it) and classify it;
    never raises for missing or mismatching files. A user pin recorded without verification (``convert`` of an
    unverified source, or a version 1 pin) is ``user-pinned-uncalibrated``."""
    entry = get_entry(key)
    found = find(key, path)
    if found is None:
        return VerifyResult(key, "missing", None, None, entry.fetch_hint())
    try:
        actual = _hash_of(entry, found)
    except WeightsNotFoundError as exc:
        return VerifyResult(key, "incomplete", found, None, str(exc))
    if entry.sha256 is not None:
        ok = actual == entry.sha256
        return VerifyResult(key, "calibrated" if ok else "mismatch", found, actual,
                            "" if ok else f"expected {entry.sha256}")
    user = read_pins().get(key, {})
    user_sha = user.get("sha256") if isinstance(user, dict) else None
    if user_sha is None:
        return VerifyResult(key, "unpinned", found, actual, f"record it with: verify {key} --pin")
    if user_sha == actual:
        if pin_calibrates(user):
            return VerifyResult(key, "user-pinned", found, actual, "calibrated, pinned by user")
        return VerifyResult(key, "user-pinned-uncalibrated", found, actual,
                            f"pinned by {user.get('by', 'an older version')} without verification; "
                            f"verify {key} --pin to count it as calibrated")
    return VerifyResult(key, "mismatch", found, actual, f"your pin is {user_sha}")


def pin_present(key: str, path: str | os.PathLike | None = None) -> VerifyResult:
    """``verify --pin KEY [PATH]``: record the hash of the file for ``key`` (at ``path``, else where
    :func:`resolve` finds it) as the user's verified pin, so results made with it count as calibrated ("pinned by
    user"). Entries with an official sha256 are not pinned (their status is returned unchanged); a file that
    differs from an earlier user pin replaces it (logged)."""
    res = verify(key, path)
    if get_entry(key).sha256 is not None or res.sha256 is None or res.path is None:
        return res
    if res.status == "user-pinned":
        return res
    old = read_pins().get(key, {})
    if res.status == "mismatch" and isinstance(old, dict):
        logger.warning("replacing your pin of %r (%s) by the hash of %s (%s)", key, old.get("sha256"), res.path,
                       res.sha256)
    target = pin(key, res.sha256, res.path)
    return dataclasses.replace(res, status="user-pinned", detail=f"calibrated, pinned by user in {target}")
