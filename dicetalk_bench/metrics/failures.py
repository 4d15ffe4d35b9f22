"""Per-video failures of a metric: recorded by kind and reason, counted, and never confused with set-up errors.

Per-video code runs each video through :func:`attempt`: a per-item failure (``ItemFailure``, e.g. no face or a too
short clip, and the media read errors; :func:`dicetalk_bench.errors.failure_kind` classifies them by type) is
recorded in a :class:`FailureLog` and the run goes on; any other exception (missing weights, a bad option, a bug)
propagates and stops the command. :meth:`FailureLog.result_fields` gives the ``failures`` / ``failure_kinds`` /
``clip_ids`` fields of a :class:`~dicetalk_bench.metrics.result.MetricResult`.

Failure policies (recorded in each result's protocol as ``failure_policy``; docs/metrics.md):

- ``count-as-wrong``: the failed video takes the metric's natural value and stays in the denominator (emotion
  accuracy: a video whose emotion is known but that cannot be classified counts as a wrong prediction);
- ``exclude``: the failed video is left out of the value; the failure rate is reported beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from dicetalk_bench.errors import FAILURE_KINDS, failure_kind, item_errors

logger = logging.getLogger(__name__)

T = TypeVar("T")

COUNT_AS_WRONG = "count-as-wrong"
EXCLUDE = "exclude"
FAILURE_POLICIES: tuple[str, ...] = (COUNT_AS_WRONG, EXCLUDE)


class FailureLog(dict):
    """Failed clip ids -> reason (a plain dict to read), with ``kinds``: clip id -> one of ``FAILURE_KINDS``.

    Being a dict, it goes wherever a ``failures`` mapping went before (JSON, caches, protocol records).
    """

    def __init__(self, reasons: Mapping[str, str] | None = None, kinds: Mapping[str, str] | None = None) -> None:
        super().__init__()
        self.kinds: dict[str, str] = {}
        reasons, kinds = dict(reasons or {}), dict(kinds or {})
        unclassified = sorted(set(reasons) - set(kinds))
        if unclassified:
            raise ValueError(f"failures {unclassified[:3]} have no failure kind")
        for clip_id, reason in reasons.items():
            self.add(clip_id, kinds[clip_id], reason)

    def add(self, clip_id: str, kind: str, reason: str) -> None:
        """Record one failure (a later record of the same clip replaces the earlier one)."""
        if kind not in FAILURE_KINDS:
            raise ValueError(f"unknown failure kind {kind!r}; expected one of {FAILURE_KINDS}")
        self[clip_id] = reason
        self.kinds[clip_id] = kind

    @property
    def reasons(self) -> dict[str, str]:
        """A plain copy: clip id -> reason."""
        return dict(self)

    def counts(self) -> dict[str, int]:
        """Failures per kind, in ``FAILURE_KINDS`` order, kinds without failures left out."""
        return {k: n for k in FAILURE_KINDS if (n := sum(1 for v in self.kinds.values() if v == k))}

    def result_fields(self, attempted: Iterable[str]) -> dict[str, Any]:
        """``failures``, ``failure_kinds`` and ``clip_ids`` (every attempted clip, sorted) for a MetricResult."""
        return {"failures": dict(self), "failure_kinds": dict(self.kinds),
                "clip_ids": tuple(sorted(set(attempted) | set(self)))}


def attempt(log: FailureLog, clip_id: str, fn: Callable[[], T], *, what: str = "") -> T | None:
    """``fn()``; on a per-item failure record it in ``log`` and return None. Other exceptions propagate."""
    try:
        return fn()
    except item_errors() as exc:
        kind = failure_kind(exc)
        if kind is None:  # a media write error: not a property of the input video
            raise
        logger.warning("%s%s failed (%s): %s", f"{what}: " if what else "", clip_id, kind, exc)
        log.add(clip_id, kind, f"{type(exc).__name__}: {exc}")
        return None
