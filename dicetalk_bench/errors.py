"""The two kinds of trouble, as exception types every stage shares.

- :class:`ItemFailure`: one item (a video, a clip) cannot be processed -- no face, a corrupt or too short
  video, no audio. The stage records it with its :attr:`ItemFailure.kind` and reason, counts it, and goes on.
- Everything else is a set-up error (missing or wrong weights, bad options, a bug): it stops the command with a
  non-zero exit and a message naming the fix. Code that catches per item catches :class:`ItemFailure` (and the
  media errors that :func:`failure_kind` classifies), never ``Exception``.

Importing this module imports nothing heavy.
"""

from __future__ import annotations

# The failure kinds a result may record (clip id -> kind), in the order reports list them.
NO_FACE = "no-face"
UNREADABLE_VIDEO = "unreadable-video"
TOO_SHORT = "too-short"
NO_AUDIO = "no-audio"
NO_LABEL = "no-label"
MISSING_REFERENCE = "missing-reference"
FAILURE_KINDS: tuple[str, ...] = (NO_FACE, UNREADABLE_VIDEO, TOO_SHORT, NO_AUDIO, NO_LABEL, MISSING_REFERENCE)


class ItemFailure(Exception):
    """One item cannot be processed; ``kind`` is one of :data:`FAILURE_KINDS`."""

    kind: str = UNREADABLE_VIDEO

    def __init__(self, message: str, *, kind: str | None = None) -> None:
        super().__init__(message)
        if kind is not None:
            if kind not in FAILURE_KINDS:
                raise ValueError(f"unknown failure kind {kind!r}; expected one of {FAILURE_KINDS}")
            self.kind = kind


class SetupError(Exception):
    """A set-up error detected by our own checks (bad option, missing input): the command stops, naming the fix."""
