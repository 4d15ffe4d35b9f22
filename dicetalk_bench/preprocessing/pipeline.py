"""The preprocessing pipeline's public face: raw clips -> face clips, face tables, audio features and manifests.

Every name here lives in a module with one job; this module re-exports them so ``from
dicetalk_bench.preprocessing import pipeline`` keeps working:

- :mod:`.preprocess_config`: :class:`PreprocessConfig`, its hashes, :func:`validate_config`, :class:`PipelineError`;
- :mod:`.task_records`: :class:`VideoTask` / :class:`AudioTask`, their output paths and JSON records;
- :mod:`.clip_frames`: a clip's frame range in chunks and the :class:`FrameBuffer` between the two video passes;
- :mod:`.faces_table`: the ``faces/{clip_id}.parquet`` table;
- :mod:`.tasks`: the per-clip work (:func:`run_video_task`, :func:`run_audio_task`, :func:`run_task`);
- :mod:`.planning`: :func:`plan` (which tasks are done already);
- :mod:`.preflight`: weights, optional dependency and output-folder checks before any work;
- :mod:`.run_outputs`: ``clips.parquet``, ``failures.parquet`` and ``features.arrow`` rebuilt from the records;
- :mod:`.orchestration`: :func:`run` (serial or Dask), :func:`execute`, :func:`local_cluster`.

Every task writes its outputs under temporary names and renames them when complete, then writes a record
``records/{kind}/{id}.json`` (status, reason, config hash, measured facts). A task never raises for a bad
input: the failure is recorded with its reason. A rerun skips tasks whose record says ``ok`` with the same
config hash (and whose outputs exist), redoes the others, and deletes temporaries left by a killed run.
The manifests (``clips.parquet``, ``failures.parquet``) and the Arrow IPC copy of the audio features
(``features.arrow``) are rebuilt from the records at the end of every run.
"""

from __future__ import annotations

from .clip_frames import FrameBuffer
from .faces_table import faces_table
from .orchestration import RunSummary, execute, local_cluster, run, sweep_temporaries
from .planning import Plan, plan
from .preflight import check_performance_report_deps, check_writable, detector_keys, preflight_weights
from .preprocess_config import (PipelineError, PreprocessConfig, audio_config_hash, validate_config,
                                video_config_hash, with_overrides)
from .run_outputs import build_outputs
from .task_records import AudioTask, VideoTask, audio_output, read_record, record_path, video_outputs
from .tasks import FaceCoverageError, run_audio_task, run_task, run_video_task

__all__ = ["AudioTask", "FaceCoverageError", "FrameBuffer", "PipelineError", "Plan", "PreprocessConfig",
           "RunSummary", "VideoTask", "audio_config_hash", "audio_output", "build_outputs",
           "check_performance_report_deps", "check_writable", "detector_keys", "execute", "faces_table",
           "local_cluster", "plan", "preflight_weights", "read_record", "record_path", "run", "run_audio_task",
           "run_task", "run_video_task", "sweep_temporaries", "validate_config", "video_config_hash",
           "video_outputs", "with_overrides"]
