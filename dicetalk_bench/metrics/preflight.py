"""Weights pre-flight: every weights file the requested metrics need is located and hash-checked before any
video is decoded or any network built, so a missing file stops the command at once, naming how to get it.

The keys come from the metric registry (:attr:`MetricSpec.weights` and the option-dependent
:attr:`OptionSpec.weights`, e.g. ``fvd.backend``); metrics that track faces also need the BlazeFace model that the
face tracker's rule picks for the videos' frame size (read from the container headers), unless option
``faces.detector`` supplies a detector. ``--weights KEY=PATH`` overrides are honoured as in
:func:`dicetalk_bench.weights.resolve`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from dicetalk_bench.metrics.registry import FACE_DETECTOR_OPTION, ScoreRequest, get_metric, required_weights

logger = logging.getLogger(__name__)


def face_detector_keys(folders: Iterable[Path]) -> list[str]:
    """BlazeFace weights keys the face tracker will use on the videos under ``folders`` (default settings).

    Frame sizes come from :func:`dicetalk_bench.media.probe` (headers only); a video that cannot be probed is left
    to fail on its own later (a per-video failure); a folder that does not exist yet or holds no video (videos still
    to be generated) is skipped. With no probe-able video the short-range model is named.
    """
    from dicetalk_bench import media
    from dicetalk_bench.metrics.video_set import list_videos
    from dicetalk_bench.preprocessing.faces import FaceTrackConfig, detector_weights_key

    config = FaceTrackConfig()
    keys: set[str] = set()
    for folder in folders:
        try:
            entries = list_videos(folder)
        except (FileNotFoundError, ValueError):  # not generated yet, or empty: nothing to probe
            continue
        for entry in entries:
            try:
                info = media.probe(entry.path)
            except media.MediaError:
                continue
            if info.width and info.height:
                keys.add(detector_weights_key(config, (info.width, info.height)))
    return sorted(keys) or ["blazeface-short"]


def weights_needed(names: Sequence[str], request: ScoreRequest) -> list[str]:
    """Every weights key the metrics ``names`` need for ``request`` (registry keys, in order)."""
    keys = required_weights(names, request.options)
    specs = [get_metric(n) for n in names]
    if any(s.face_detector for s in specs) and request.options.get(FACE_DETECTOR_OPTION) is None:
        folders = [request.videos]
        if request.reference is not None and any(s.face_detector and s.needs_reference for s in specs):
            folders.append(request.reference)
        keys += [k for k in face_detector_keys(folders) if k not in keys]
    return keys


def check_weights(names: Sequence[str], request: ScoreRequest) -> dict[str, Any]:
    """Resolve (locate and hash-check) every weights file the metrics need; returns key -> ``ResolvedWeights``.

    Raises :class:`dicetalk_bench.weights.WeightsError` listing every file that is missing or does not verify,
    each with the command or place that fixes it. ``--weights`` keys that are not in the weights registry are
    refused; keys no requested metric needs are logged (they do nothing).
    """
    from dicetalk_bench import weights

    for key in request.weights:
        weights.get_entry(key)  # UnknownWeightsKeyError naming the known keys
    keys = weights_needed(names, request)
    unused = sorted(set(request.weights) - set(keys))
    if unused:
        logger.warning("--weights %s: not needed by metrics %s (ignored)", ", ".join(unused), ", ".join(names))
    resolved: dict[str, Any] = {}
    problems: list[str] = []
    for key in keys:
        try:
            resolved[key] = weights.resolve(key, request.weights.get(key), allow_unverified=request.allow_unverified)
        except weights.WeightsError as exc:
            problems.append(str(exc))
    classifier = request.options.get("emo-acc.classifier")
    if "emo-acc" in names and isinstance(classifier, str) and classifier.startswith("own:"):
        own = Path(classifier[len("own:"):]).expanduser()
        if not (own.is_file() or own.with_name(own.name + ".safetensors").is_file()):
            problems.append(f"emo-acc.classifier: {own} not found (train one with `python -m dicetalk_bench.metrics "
                            f"train-emotion --out {own}`)")
    if problems:
        raise weights.WeightsError(
            f"metrics {', '.join(names)} cannot start: {len(problems)} weights file(s) missing or not verified "
            f"(nothing was scored):\n" + "\n".join(f"- {p}" for p in problems))
    return resolved
