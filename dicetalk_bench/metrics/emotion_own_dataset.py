"""Training data for our own emotion classifier: a preprocessed MEAD folder's ``clips.parquet`` rows -> per-clip
sampled region features (:class:`ClipFeatures`), speaker-centred, and the hash of the clips used.

A clip that cannot be read is recorded with its reason and left out; the others go on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .emotion_own_features import OwnEmotionProtocol, region_features, sample_frame_indices, speaker_means

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ClipFeatures:
    """One clip's labels and its sampled frames' raw region features (K, F)."""

    clip_id: str
    speaker: str
    emotion: str
    split: str
    features: np.ndarray  # (K, F)


def read_manifest(processed: Path, views: Sequence[str] | None) -> tuple[list[dict[str, Any]], str]:
    import pyarrow.parquet as pq

    from dicetalk_bench.fileutil import sha256_file

    path = processed / "clips.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: --processed must be the output folder of "
                                f"`python -m dicetalk_bench.preprocess --dataset mead`")
    rows = pq.read_table(path).to_pylist()
    need = {"clip_id", "dataset", "speaker", "view", "emotion", "split", "status", "video", "faces"}
    if rows and not need <= set(rows[0]):
        raise ValueError(f"{path}: missing columns {sorted(need - set(rows[0]))}")
    rows = [r for r in rows if r["dataset"] == "mead" and r["status"] == "ok"
            and (views is None or r["view"] in views)]
    return sorted(rows, key=lambda r: r["clip_id"]), sha256_file(path)


def clip_features(processed: Path, row: Mapping[str, Any], protocol: OwnEmotionProtocol) -> np.ndarray:
    import pyarrow.parquet as pq

    from dicetalk_bench import media
    from dicetalk_bench.preprocessing.crop import square_face_crops

    video = media.read_video(processed / row["video"])
    faces_path = processed / row["faces"]
    boxes = pq.read_table(faces_path, columns=["box_crop"]).column("box_crop").to_pylist()
    boxes = np.asarray(boxes, np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) != len(video.frames):
        raise ValueError(f"{faces_path}: {len(boxes)} face boxes for {len(video.frames)} frames of "
                         f"{processed / row['video']}; rerun the preprocessing for this clip")
    idx = sample_frame_indices(len(video.frames), protocol.frames_per_video)
    crops = square_face_crops(video.frames[idx], boxes[idx], protocol.crop_scale, protocol.input_size)
    return region_features(crops, protocol)


def load_clips(processed: Path, rows: Sequence[Mapping[str, Any]], protocol: OwnEmotionProtocol
                ) -> tuple[list[ClipFeatures], dict[str, str]]:
    from dicetalk_bench.metrics.emotion import MEAD_EMOTIONS

    clips, failures = [], {}
    for row in rows:
        if row["emotion"] not in MEAD_EMOTIONS:
            failures[row["clip_id"]] = f"emotion {row['emotion']!r} is not a MEAD emotion"
            continue
        try:
            feats = clip_features(processed, row, protocol)
        except Exception as exc:  # noqa: BLE001 - one bad clip is recorded, training goes on
            log.warning("train-emotion: %s skipped: %s", row["clip_id"], exc)
            failures[row["clip_id"]] = f"{type(exc).__name__}: {exc}"
            continue
        clips.append(ClipFeatures(row["clip_id"], row["speaker"], row["emotion"], row["split"], feats))
    return clips, failures


def speaker_centred(clips: Sequence[ClipFeatures]) -> dict[str, np.ndarray]:
    """{clip id: (K, F) features minus the clip's speaker mean} (means over these clips only)."""
    feats = {c.clip_id: c.features for c in clips}
    spk = {c.clip_id: c.speaker for c in clips}
    means = speaker_means(feats, spk)
    return {c.clip_id: c.features - means[c.speaker] for c in clips}


def manifest_hash(clips: Sequence[ClipFeatures], rows: Sequence[Mapping[str, Any]]) -> str:
    """sha256 over the sorted (clip id, source video sha256, config hash) of the clips used."""
    by_id = {r["clip_id"]: r for r in rows}
    h = hashlib.sha256()
    for c in sorted(clips, key=lambda c: c.clip_id):
        r = by_id[c.clip_id]
        h.update(f"{c.clip_id}\t{r.get('src_video_sha256')}\t{r.get('config_hash')}\n".encode())
    return h.hexdigest()
