"""Hashing of weights files and folders (with a (path, size, mtime) cache so multi-GB files are hashed once),
and the user pins of entries that have no published hash."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dicetalk_bench.fileutil import atomic_write_bytes, sha256_file

from .entry import WeightsEntry
from .errors import WeightsError, WeightsNotFoundError
from .locations import hash_cache_path, pins_path
from .table import get_entry

logger = logging.getLogger(__name__)

_CACHE_LOCK = threading.Lock()


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable %s (%s)", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file, reusing a cached value while the file's (resolved path, size, mtime_ns) are unchanged.

    The cache is a small JSON (:func:`hash_cache_path`); a file whose size, mtime, ctime or inode changed is
    re-hashed. A cache
    that cannot be written (read-only home) only costs time.
    """
    p = Path(path).resolve()
    st = p.stat()
    cache_file = hash_cache_path()
    # ctime and inode too: an in-place rewrite within the mtime granularity still changes ctime
    ident = f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"
    with _CACHE_LOCK:
        cached = _load_json(cache_file).get(str(p))
    if isinstance(cached, dict) and cached.get("id") == ident and isinstance(cached.get("sha256"), str):
        return cached["sha256"]
    digest = sha256_file(p)
    with _CACHE_LOCK:
        data = _load_json(cache_file)
        data[str(p)] = {"id": ident, "sha256": digest}
        try:
            atomic_write_bytes(cache_file, json.dumps(data, indent=0, sort_keys=True).encode())
        except OSError as exc:
            logger.warning("cannot write the hash cache %s (%s); files will be re-hashed next time", cache_file, exc)
    return digest


def _folder_files(folder: Path, files: Sequence[str]) -> list[str]:
    if files:
        return sorted(files)
    found = []
    for p in folder.rglob("*"):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue  # hidden files (e.g. .cache/huggingface from `huggingface-cli download`) are not content
        found.append(rel.as_posix())
    return sorted(found)


def folder_manifest(folder: str | os.PathLike, files: Sequence[str] = ()) -> str:
    """The manifest text of a folder: one ``"<relpath> <sha256>\\n"`` line per file, sorted by relpath.

    ``files`` limits it to these relative paths (all must exist); empty means every non-hidden file, recursively.
    The folder's hash is the sha256 of this text (UTF-8); see :func:`folder_sha256`.
    """
    folder = Path(folder)
    rels = _folder_files(folder, files)
    missing = [r for r in rels if not (folder / r).is_file()]
    if missing:
        raise WeightsNotFoundError(f"folder {folder} is incomplete: missing {', '.join(missing)}")
    if not rels:
        raise WeightsNotFoundError(f"folder {folder} holds no files")
    return "".join(f"{rel} {file_sha256(folder / rel)}\n" for rel in rels)


def folder_sha256(folder: str | os.PathLike, files: Sequence[str] = ()) -> str:
    """sha256 of :func:`folder_manifest` (per-file hashes come from the cache when unchanged)."""
    return hashlib.sha256(folder_manifest(folder, files).encode("utf-8")).hexdigest()


def _hash_of(entry: WeightsEntry, path: Path) -> str:
    return folder_sha256(path, entry.files) if entry.kind == "folder" else file_sha256(path)


# User pins
PINS_VERSION = 2  # version 1 pins have no "calibrated" field and are read as calibrated=False


def read_pins() -> dict[str, dict[str, Any]]:
    """The user pins ``{key: {"sha256", "file", "pinned_at", "calibrated", "by"}}`` from :func:`pins_path` (empty
    if none)."""
    pins = _load_json(pins_path()).get("pins", {})
    return pins if isinstance(pins, dict) else {}


def pin_calibrates(user_pin: Mapping[str, Any]) -> bool:
    """Whether a user pin makes a matching file count as calibrated: only a pin the user recorded as verified
    (``verify --pin``, or ``convert`` of a calibrated source) does; version 1 pins, which did not say, do not."""
    return user_pin.get("calibrated") is True


def pin(key: str, sha256: str, file: str | os.PathLike, *, calibrated: bool = True, by: str = "verify --pin",
        source_sha256: str | None = None) -> Path:
    """Record ``sha256`` as the user's pin for an entry that has no official hash; returns the pin file.

    ``calibrated=True`` (``verify --pin``): the user verified the file, so results made with a file of this hash
    count as calibrated, labelled "pinned by user". ``convert`` records its output with the calibration of its
    source (``source_sha256``). Replaces an earlier pin of ``key``.
    """
    entry = get_entry(key)
    if entry.sha256 is not None:
        raise WeightsError(f"{key} has an official sha256 ({entry.sha256}); user pins are only for unpinned entries")
    target = pins_path()
    data = _load_json(target)
    pins = data.get("pins") if isinstance(data.get("pins"), dict) else {}
    record: dict[str, Any] = {"sha256": sha256, "file": str(file), "calibrated": bool(calibrated), "by": by,
                              "pinned_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if source_sha256 is not None:
        record["source_sha256"] = source_sha256
    pins[key] = record
    atomic_write_bytes(target, json.dumps({"version": PINS_VERSION, "pins": pins}, indent=2,
                                          sort_keys=True).encode())
    return target
