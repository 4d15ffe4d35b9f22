"""The two kinds of trouble, as exception types every stage shares.

- :class:`ItemFailure`: one item (a video, a clip) cannot be processed -- no face, a corrupt or too short
  video, no audio. The stage records it with its :attr:`ItemFailure.kind` and reason, counts it, and goes on.
- Everything else is a set-up error (missing or wrong weights, bad options, a bug): it stops the command with a
  non-zero exit and a message naming the fix. Code that catches per item catches :class:`ItemFailure` (and the
  media errors that :func:`failure_kind` classifies), never ``Exception``.

Importing this module imports nothing heavy.
"""

from __future__ import annotations

import sys

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


class TooShortError(ItemFailure, ValueError):
    """An item too short for the measurement (fewer frames or samples than one window); kind ``too-short``.

    Also a ValueError, so callers that caught the ValueError raised before keep working."""

    kind = TOO_SHORT


def item_errors() -> tuple[type[BaseException], ...]:
    """The exception types per-item code may catch: :class:`ItemFailure` and the media module's read errors.

    Use as ``except item_errors() as exc:`` followed by :func:`failure_kind`; anything else (missing weights,
    bad options, bugs) must propagate and stop the command.
    """
    media = sys.modules.get("dicetalk_bench.media")  # a media error can only come from an imported media module
    return (ItemFailure,) if media is None else (ItemFailure, media.MediaError)


def failure_kind(exc: BaseException) -> str | None:
    """The :data:`FAILURE_KINDS` entry for a per-item exception, by its type; None for anything else.

    ``ItemFailure`` (and subclasses such as the face tracker's ``NoFaceError``) -> its ``kind``; media read errors
    -> ``no-audio`` (no audio stream, or one without samples) or ``unreadable-video`` (missing, empty, corrupt
    file, no video stream). Media *write* errors and every other type return None: they are set-up errors or bugs.
    """
    if isinstance(exc, ItemFailure):
        return exc.kind
    media = sys.modules.get("dicetalk_bench.media")
    if media is None or not isinstance(exc, media.MediaError) or isinstance(exc, media.MediaWriteError):
        return None
    if isinstance(exc, (media.NoAudioError, media.EmptyAudioError)):
        return NO_AUDIO
    return UNREADABLE_VIDEO


class SetupError(Exception):
    """A set-up error detected by our own checks (bad option, missing input): the command stops, naming the fix."""
