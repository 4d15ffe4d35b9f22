"""Checks before any preprocessing work: every pretrained file resolves, the optional report dependency is
installed, the output folder is writable. Each failure raises :class:`PipelineError` naming the fix, so a run stops
once at the start instead of failing clip by clip.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .faces import FaceTrackConfig
from .preprocess_config import PipelineError, PreprocessConfig

log = logging.getLogger(__name__)


def detector_keys(faces: FaceTrackConfig) -> tuple[str, ...]:
    """The registry keys the face-box provider of ``faces`` may load (BlazeFace ``auto`` picks per frame size:
    both). An unknown provider raises ValueError naming the known ones."""
    from .faces import box_source

    return tuple(box_source(faces.box_source).weights_keys(faces))


def preflight_weights(cfg: PreprocessConfig, *, allow_unverified: bool = False) -> dict[str, dict[str, Any]]:
    """Resolve every pretrained file the run needs, before anything is written or any worker starts.

    Checks the BlazeFace models (:func:`detector_keys`, or ``faces.detector_path``), the Whisper encoder
    (``audio.whisper``: the registry's whisper-tiny by default) and, with ``fan``, the FAN and S3FD files. Returns
    ``{key: record}`` (``record()`` of each resolved file; the Whisper one under ``"whisper"``). Raises
    :class:`PipelineError` naming every missing or refused file and how to get it, so a run without weights stops
    once, at the start, instead of failing clip by clip. A ``random:SEED`` Whisper is logged as a warning: its
    features are useless for real training and every output records it.
    """
    from dicetalk_bench import weights

    from .whisper import describe_spec, random_seed_of, whisper_record

    records: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    if cfg.faces.detector_path is not None and not Path(cfg.faces.detector_path).is_file():
        problems.append(f"faces.detector_path={cfg.faces.detector_path}: no such file (a BlazeFace .tflite model); "
                        f"fix the path, or drop the setting to use the registry's blazeface files")
    keys = list(detector_keys(cfg.faces)) + (["fan-2d", "s3fd"] if cfg.fan else [])
    for key in keys:
        try:
            records[key] = weights.resolve(key, allow_unverified=allow_unverified).record()
        except weights.WeightsError as exc:
            problems.append(str(exc))
    try:
        random_seed_of(cfg.audio.whisper)
        records["whisper"] = whisper_record(cfg.audio.whisper, allow_unverified=allow_unverified)
    except ValueError as exc:  # random:<not an int>
        problems.append(str(exc))
    except weights.WeightsError as exc:
        hint = ("" if cfg.audio.whisper is not None else
                "\nOr pass --whisper DIR (a whisper-tiny transformers folder). Only for smoke runs without real "
                "weights: --whisper random:SEED (an uncalibrated random encoder; every output records it).")
        problems.append(f"{exc}{hint}")
    if problems:
        raise PipelineError(f"{len(problems)} weights problem(s); nothing was processed or written:\n- "
                            + "\n- ".join(problems))
    if random_seed_of(cfg.audio.whisper) is not None:
        log.warning("audio features use a %s: fine for smoke tests and the demo, useless for real training; "
                    "clips.parquet, features.arrow, each audio Parquet file and preprocess_config.yaml record it",
                    describe_spec(cfg.audio.whisper))
    return records


def check_performance_report_deps() -> None:
    """Dask's performance report renders with bokeh, which is not a dependency: fail before any work."""
    try:
        import bokeh  # noqa: F401
    except ImportError:
        raise PipelineError("--performance-report needs the 'bokeh' package (pip install 'bokeh>=3.1'); "
                            "rerun without --performance-report or install it") from None


def check_writable(out: Path) -> None:
    """Raise :class:`PipelineError` naming ``out`` when it cannot be created or written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write_probe.{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise PipelineError(f"output folder {out} is not writable ({exc.strerror or exc}); choose another --out "
                            f"or fix its permissions") from exc
