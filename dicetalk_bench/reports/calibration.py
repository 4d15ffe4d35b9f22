"""Whether a leaderboard row is calibrated, and which part is not (pure functions over results and provenance).

A row is calibrated only when

- every extractor of every metric used calibrated weights (the published sha256, or a file the user pinned as
  verified with ``python -m dicetalk_bench.weights verify --pin``: labelled "pinned by user"), and
- for videos generated from a checkpoint (``provenance["checkpoint"]``), every pretrained weights record the
  checkpoint was trained with (``checkpoint["weights"]``, from its ``state.json``: SVD, Whisper) is calibrated too:
  a generator trained on ``random:SEED`` weights makes the row uncalibrated, and so does a checkpoint that does not
  record its weights.

Videos scored from a folder (``--videos``) carry no generator record; their calibration rests on the extractors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

# How the page names the pretrained parts of a generator.
COMPONENT_NAMES = {"svd-xt": "SVD", "whisper-tiny": "Whisper"}


@dataclasses.dataclass(frozen=True)
class RowCalibration:
    """``problems``: why the row is not calibrated (empty when it is); ``pinned_by_user``: weights keys whose hash
    the user pinned (calibrated, but not the published hash)."""

    problems: tuple[str, ...] = ()
    pinned_by_user: tuple[str, ...] = ()

    @property
    def calibrated(self) -> bool:
        return not self.problems

    def label(self) -> str:
        """One line for the page: "calibrated", "calibrated (pinned by user: i3d-400)" or "uncalibrated: ..."."""
        if self.problems:
            return "uncalibrated: " + "; ".join(self.problems)
        if self.pinned_by_user:
            return "calibrated (pinned by user: " + ", ".join(self.pinned_by_user) + ")"
        return "calibrated"


def _is_random(record: Mapping[str, Any]) -> bool:
    return "random_seed" in record or str(record.get("file", "")).startswith("random:")


def _weights_state(record: Mapping[str, Any]) -> str:
    """"random", "unverified" or "" (calibrated) for one weights record."""
    if _is_random(record):
        return "random"
    return "" if record.get("calibrated") is True else "unverified"


def extractor_problems(extractors: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """(problems, keys pinned by the user) of metric extractor records."""
    problems: list[str] = []
    pinned: list[str] = []
    for e in extractors:
        key = str(e.get("key"))
        state = _weights_state(e)
        if state:
            text = f"{state} {key} weights in the metrics"
            if text not in problems:
                problems.append(text)
        elif e.get("pinned_by") == "user" and key not in pinned:
            pinned.append(key)
    return problems, pinned


def _is_record(value: Mapping[str, Any]) -> bool:
    return any(k in value for k in ("key", "sha256", "calibrated"))


def generator_problems(provenance: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(problems, keys pinned by the user) of the checkpoint the videos were generated with (none without one).

    ``checkpoint["weights"]`` maps a name to a weights record (``"svd"``, ``"whisper"``) or to a mapping of records
    (``"official"``: the release files a run was initialised from; empty when it was not).
    """
    checkpoint = provenance.get("checkpoint")
    if not isinstance(checkpoint, Mapping):
        return [], []
    records = checkpoint.get("weights")
    if not isinstance(records, Mapping) or not records:
        return ["generator's pretrained weights are not recorded in its checkpoint"], []
    problems: list[str] = []
    pinned: list[str] = []
    flat: list[tuple[str, str, Any]] = []  # (verb, name, record)
    for name in sorted(records):
        value = records[name]
        if isinstance(value, Mapping) and value and not _is_record(value):
            flat += [("initialised from", sub, value[sub]) for sub in sorted(value)]
        elif value is not None and not (isinstance(value, Mapping) and not value):
            flat.append(("trained on", name, value))
    for verb, name, record in flat:
        if not isinstance(record, Mapping) or not _is_record(record):
            problems.append(f"generator's {name} weights record is unreadable")
            continue
        key = str(record.get("key", name))
        state = _weights_state(record)
        if state:
            problems.append(f"generator {verb} {state} {COMPONENT_NAMES.get(key, key)} weights")
        elif record.get("pinned_by") == "user":
            pinned.append(key)
    return problems, pinned


def row_calibration(results: Iterable[Any], provenance: Mapping[str, Any]) -> RowCalibration:
    """Calibration of one row from its MetricResults' extractor records and its provenance (see module doc)."""
    extractors = [e for r in results for e in r.extractors]
    p_ext, pin_ext = extractor_problems(extractors)
    p_gen, pin_gen = generator_problems(provenance)
    pinned = list(dict.fromkeys(pin_ext + pin_gen))
    return RowCalibration(tuple(p_ext + p_gen), tuple(pinned))
