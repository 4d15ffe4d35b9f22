"""The weights errors: every message names the file and what to do."""

from __future__ import annotations


class WeightsError(Exception):
    """Base class of every weights problem; the message names the file and what to do."""


class WeightsNotFoundError(WeightsError):
    """No file for a key at the place that decides (see the resolution order)."""


class WeightsHashMismatchError(WeightsError):
    """A file's sha256 differs from the pinned one."""


class UnknownWeightsKeyError(WeightsError, KeyError):
    """A key that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
