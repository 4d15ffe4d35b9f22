"""The registry: the built-in entries checked once, read through a view that test-only entries can extend."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping

from .entries import _ENTRIES
from .entry import WeightsEntry
from .errors import UnknownWeightsKeyError, WeightsError


def _check_table(entries: Iterable[WeightsEntry]) -> dict[str, WeightsEntry]:
    """Refuse duplicate keys, bad kinds and malformed hashes (a registry that refuses invalid names)."""
    table: dict[str, WeightsEntry] = {}
    for e in entries:
        if e.key in table:
            raise WeightsError(f"duplicate weights key {e.key!r} in the registry")
        if e.kind not in ("file", "folder"):
            raise WeightsError(f"weights entry {e.key!r}: kind must be 'file' or 'folder', not {e.kind!r}")
        if e.sha256 is not None and (len(e.sha256) != 64 or any(c not in "0123456789abcdef" for c in e.sha256)):
            raise WeightsError(f"weights entry {e.key!r}: sha256 must be 64 lower-case hex digits, not {e.sha256!r}")
        table[e.key] = e
    return table


_BUILTIN = _check_table(_ENTRIES)
_OVERRIDES: list[dict[str, WeightsEntry]] = []
_OVERRIDE_LOCK = threading.Lock()


class _RegistryView(Mapping[str, WeightsEntry]):
    """Read-only view of the built-in table plus any :func:`registry_override` layers (innermost wins)."""

    def _merged(self) -> dict[str, WeightsEntry]:
        merged = dict(_BUILTIN)
        for layer in _OVERRIDES:
            merged.update(layer)
        return merged

    def __getitem__(self, key: str) -> WeightsEntry:
        merged = self._merged()
        if key not in merged:
            raise UnknownWeightsKeyError(
                f"unknown weights key {key!r}; known keys: {', '.join(sorted(merged))}")
        return merged[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged())

    def __len__(self) -> int:
        return len(self._merged())


REGISTRY: Mapping[str, WeightsEntry] = _RegistryView()


@contextlib.contextmanager
def registry_override(extra_entries: Iterable[WeightsEntry]) -> Iterator[Mapping[str, WeightsEntry]]:
    """Add (or replace) entries for the duration of a ``with`` block, e.g. a test-only entry.

    >>> with registry_override([WeightsEntry(key="toy", ...)]):
    ...     resolve("toy", path)
    """
    layer = _check_table(extra_entries)
    with _OVERRIDE_LOCK:
        _OVERRIDES.append(layer)
    try:
        yield REGISTRY
    finally:
        with _OVERRIDE_LOCK:
            _OVERRIDES.remove(layer)


def get_entry(key: str) -> WeightsEntry:
    """The registry entry for ``key``; :class:`UnknownWeightsKeyError` lists the known keys."""
    return REGISTRY[key]
