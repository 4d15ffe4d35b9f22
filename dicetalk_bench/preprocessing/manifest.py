"""Clip records found by discovery, their stable ids, and the ``clips.parquet`` schema.

A :class:`ClipSource` is what discovery knows from file names alone (no decoding): which file, which
time range, which speaker/emotion/view, which split. The pipeline adds what it measures (sha256, fps, size,
status) when it builds the manifest table with :func:`manifest_table`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import pyarrow as pa

if TYPE_CHECKING:
    import pandas

#: Bumped whenever the meaning of an output changes; stored in every manifest row and record.
PREPROCESSING_VERSION = "1"


class DiscoveryError(ValueError):
    """The raw data tree or an annotation file cannot be understood (names the file and the problem)."""


@dataclass(frozen=True)
class ClipSource:
    """One output clip as discovered on disk.

    ``clip_id`` is stable: it is derived from the path relative to the dataset root (MEAD:
    ``mead/{speaker}/{view}/{emotion}/level_{n}/{sentence}``; HDTF: ``hdtf/{group}_{name}_{k}``).
    ``audio_id`` names the audio features the clip uses; in MEAD all 7 views of an utterance share one
    (``mead/{speaker}/{emotion}/level_{n}/{sentence}``), in HDTF it equals ``clip_id``.
    ``start_s`` / ``end_s`` cut a time range from the source (HDTF); ``None`` means the whole file.
    """

    clip_id: str
    dataset: str
    speaker: str
    split: str
    video_path: Path
    audio_path: Path | None
    audio_id: str
    view: str | None = None
    emotion: str | None = None
    level: int | None = None
    sentence: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    hdtf_crop_wh: tuple[int, int, int, int] | None = None  # min_w, w, min_h, h at the reference resolution
    hdtf_crop_ratio: float | None = None
    hdtf_resolution: int | None = None


@dataclass(frozen=True)
class UnexpectedFile:
    """A file or folder that fits no discovery rule; reported, never guessed at."""

    path: Path
    reason: str


@dataclass(frozen=True)
class Discovery:
    """Result of listing a raw tree: the clips and everything that did not fit."""

    clips: tuple[ClipSource, ...]
    unexpected: tuple[UnexpectedFile, ...]


def safe_name(clip_id: str) -> str:
    """File-system-safe flat name of an id (``/`` -> ``__``), used for per-clip record files."""
    return clip_id.replace("/", "__")


#: ``clips.parquet``: one row per output clip. Documented in docs/data_format.md.
CLIPS_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("dataset", pa.string()),
        ("speaker", pa.string()),
        ("view", pa.string()),
        ("emotion", pa.string()),
        ("level", pa.int8()),
        ("sentence", pa.string()),
        ("split", pa.string()),
        ("audio_id", pa.string()),
        ("src_video", pa.string()),
        ("src_video_sha256", pa.string()),
        ("src_audio", pa.string()),
        ("src_audio_sha256", pa.string()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("src_duration_s", pa.float64()),
        ("src_fps", pa.float64()),
        ("src_width", pa.int32()),
        ("src_height", pa.int32()),
        ("src_audio_rate", pa.int32()),
        ("n_frames", pa.int32()),
        ("fps", pa.float64()),
        ("crop_size", pa.int32()),
        ("video", pa.string()),
        ("faces", pa.string()),
        ("audio_features", pa.string()),
        ("face_coverage", pa.float32()),
        ("n_face_tracks", pa.int32()),
        ("status", pa.string()),
        ("failure_reason", pa.string()),
        ("preprocessing_version", pa.string()),
        ("config_hash", pa.string()),
    ]
)

#: ``failures.parquet``: one row per failed task (video or audio).
FAILURES_SCHEMA = pa.schema(
    [
        ("task_id", pa.string()),
        ("kind", pa.string()),
        ("path", pa.string()),
        ("error_type", pa.string()),
        ("reason", pa.string()),
        ("config_hash", pa.string()),
    ]
)


def manifest_table(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Build ``clips.parquet`` rows (missing keys become null) sorted by ``clip_id``."""
    names = CLIPS_SCHEMA.names
    rows = sorted(rows, key=lambda r: r["clip_id"])
    cols = {n: [r.get(n) for r in rows] for n in names}
    return pa.table(cols, schema=CLIPS_SCHEMA)


def failures_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Build ``failures.parquet`` sorted by ``task_id``."""
    rows = sorted(rows, key=lambda r: (r["task_id"], r["kind"]))
    return pa.table({n: [r.get(n) for r in rows] for n in FAILURES_SCHEMA.names}, schema=FAILURES_SCHEMA)


def source_row(clip: ClipSource, root: Path) -> dict[str, Any]:
    """Manifest fields known from discovery; paths are stored relative to the raw root."""

    def rel(p: Path | None) -> str | None:
        if p is None:
            return None
        try:
            return str(Path(p).relative_to(root))
        except ValueError:
            return str(p)

    return {
        "clip_id": clip.clip_id,
        "dataset": clip.dataset,
        "speaker": clip.speaker,
        "view": clip.view,
        "emotion": clip.emotion,
        "level": clip.level,
        "sentence": clip.sentence,
        "split": clip.split,
        "audio_id": clip.audio_id,
        "src_video": rel(clip.video_path),
        "src_audio": rel(clip.audio_path),
        "start_s": clip.start_s,
        "end_s": clip.end_s,
    }


def filter_clips(
    clips: Iterable[ClipSource],
    *,
    speakers: Sequence[str] | None = None,
    views: Sequence[str] | None = None,
) -> list[ClipSource]:
    """Keep clips of the given speakers / views (``None`` keeps all; HDTF clips have no view)."""
    out = []
    for c in clips:
        if speakers and c.speaker not in speakers:
            continue
        if views and c.view is not None and c.view not in views:
            continue
        out.append(c)
    return out


def replace(clip: ClipSource, **changes: Any) -> ClipSource:
    """``dataclasses.replace`` re-exported for callers that build variants of a clip."""
    return dataclasses.replace(clip, **changes)


def load_manifest(out_dir: str | Path, *, status: str | None = "ok", split: str | None = None,
                  dataset: str | None = None) -> "pandas.DataFrame":
    """The clip manifest of a preprocessing output folder as a pandas DataFrame, one row per clip, sorted by id.

    ``status`` / ``split`` / ``dataset`` filter rows (None keeps all). ``level`` is a nullable integer, the
    categorical columns (dataset, speaker, view, emotion, split, status) are pandas categoricals so groupbys list
    every emotion and level found. Raises FileNotFoundError naming the folder when it has no ``clips.parquet``.
    """
    import pandas as pd
    import pyarrow.parquet as pq

    path = Path(out_dir) / "clips.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{out_dir}: no clips.parquet; pass the output folder of "
                                "python -m dicetalk_bench.preprocess")
    frame = pq.read_table(path).to_pandas()
    for column, wanted in (("status", status), ("split", split), ("dataset", dataset)):
        if wanted is not None:
            frame = frame[frame[column] == wanted]
    if "level" in frame.columns:
        frame["level"] = frame["level"].astype("Int8")
    for column in ("dataset", "speaker", "view", "emotion", "split", "status"):
        if column in frame.columns:
            frame[column] = frame[column].astype("category")
    return frame.sort_values("clip_id").reset_index(drop=True)
