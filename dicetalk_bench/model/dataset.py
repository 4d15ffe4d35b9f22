"""Training windows read from the preprocessing outputs (docs/data_format.md).

Inputs, all under the preprocessing output folder ``root``:

- ``clips.parquet``: one row per clip (``clip_id``, ``split``, ``status``, ``emotion``, ``level``, ``n_frames``,
  ``fps`` = 25, ``crop_size``, relative paths ``video``, ``faces``, ``audio_features``);
- ``videos/<clip_id>.mp4``: square face crops at 25 fps;
- ``faces/<clip_id>.parquet``: per frame ``mask_box_crop`` = face box x1.1 in crop pixels (xyxy);
- ``audio/<audio_id>.parquet``: per video frame ``whisper`` = (2, 5, 384) float16 Whisper-tiny states
  (50 Hz, embedding output + 4 layers); its schema metadata records the Whisper weights (sha256, calibrated).

A training window (DICE-Talk recipe, docs/model.md): ``num_frames`` frames taken every ``frame_stride`` source
frames (25 frames at 12.5 fps), each with the 10 Whisper states from 80 ms before to 120 ms after its start
(:func:`whisper_windows`, the release's ``audio_prompts[:, 4i:4i+10]`` with 4 + 6 zero padding), the face-box
mask drawn at the training resolution, a reference frame from the same clip, the emotion prior of its label and
the 22-way class (7 emotions x 3 levels + neutral; -1 where the clip has no label, e.g. HDTF).

Windows are addressed by ``(clip index, start frame, reference frame)`` keys drawn by :func:`window_keys` from
``(seed, step)`` alone, so a resumed run sees exactly the data an uninterrupted run would.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dicetalk_bench.datasets import LEVELLED_EMOTIONS

logger = logging.getLogger(__name__)

#: MEAD emotions with intensity levels (class = 1 + 3 * index + level - 1); neutral has one class, 0.
NUM_EMOTION_CLASSES = 1 + 3 * len(LEVELLED_EMOTIONS)  # 22
WHISPER_STATES_PER_FRAME = 2
WHISPER_PAD_BEFORE, WHISPER_PAD_AFTER, WHISPER_WINDOW = 4, 6, 10  # release test_preprocess.py


class DatasetError(ValueError):
    """The preprocessing outputs cannot be used for training; the message names the file and the problem."""


def emotion_class(emotion: str | None, level: int | None) -> int:
    """22-way label: neutral -> 0; other emotions -> 1 + 3 * index + (level - 1); no label -> -1."""
    if emotion is None or (isinstance(emotion, float) and np.isnan(emotion)):
        return -1
    if emotion == "neutral":
        return 0
    if emotion not in LEVELLED_EMOTIONS:
        raise DatasetError(f"unknown emotion {emotion!r}; expected neutral or one of {LEVELLED_EMOTIONS}")
    if level not in (1, 2, 3):
        raise DatasetError(f"emotion {emotion!r} needs a level in 1..3, got {level!r}")
    return 1 + 3 * LEVELLED_EMOTIONS.index(emotion) + int(level) - 1


def whisper_windows(states: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Whisper windows for 25-fps frames ``frames``: (T, 2, L, D) states -> (len(frames), 10, L, D).

    Frame j covers states [2j - 4, 2j + 6) of the 50 Hz sequence, zeros outside it (release: zero-pad 4 before
    and 6 after, then generated frame i at 12.5 fps takes ``[4i, 4i + 10)``, i.e. j = 2i).
    """
    t, per, layers, dim = states.shape
    flat = states.reshape(t * per, layers, dim).astype(np.float32)
    padded = np.concatenate([np.zeros((WHISPER_PAD_BEFORE, layers, dim), np.float32), flat,
                             np.zeros((WHISPER_PAD_AFTER, layers, dim), np.float32)])
    starts = WHISPER_STATES_PER_FRAME * np.asarray(frames, dtype=np.int64)
    if starts.size and (starts.min() < 0 or frames.max() >= t):
        raise IndexError(f"frames {frames.min()}..{frames.max()} outside 0..{t - 1}")
    return np.stack([padded[s:s + WHISPER_WINDOW] for s in starts])


def box_masks(boxes_xyxy: np.ndarray, crop_size: int, resolution: int) -> np.ndarray:
    """(F, 4) boxes in crop pixels -> (F, 3, R, R) float32 binary masks at ``resolution`` (3 channels like the
    release's mask image); pixel (y, x) is inside when its centre lies in the scaled box."""
    scale = resolution / float(crop_size)
    centres = np.arange(resolution, dtype=np.float32) + 0.5
    b = boxes_xyxy.astype(np.float32) * scale
    inside_x = (centres[None, :] >= b[:, 0:1]) & (centres[None, :] <= b[:, 2:3])
    inside_y = (centres[None, :] >= b[:, 1:2]) & (centres[None, :] <= b[:, 3:4])
    mask = (inside_y[:, :, None] & inside_x[:, None, :]).astype(np.float32)
    return np.repeat(mask[:, None], 3, axis=1)


@dataclass(frozen=True)
class ClipRecord:
    clip_id: str
    video: Path
    faces: Path
    audio: Path
    n_frames: int
    crop_size: int
    emotion: str | None
    level: int | None
    speaker: str | None = None


def read_manifest(root: str | Path, split: str | None = "train") -> list[ClipRecord]:
    """Usable clips of ``root/clips.parquet`` (status ok, in ``split`` unless None), sorted by clip id."""
    import pyarrow.parquet as pq

    root = Path(root)
    path = root / "clips.parquet"
    if not path.is_file():
        raise DatasetError(f"{path} not found: run `python -m dicetalk_bench.preprocess` first")
    table = pq.read_table(path)
    need = {"clip_id", "split", "status", "emotion", "level", "n_frames", "fps", "crop_size", "video", "faces",
            "audio_features"}
    missing = need - set(table.column_names)
    if missing:
        raise DatasetError(f"{path} lacks column(s) {sorted(missing)}")
    out = []
    for row in table.to_pylist():
        if row["status"] != "ok" or (split is not None and row["split"] != split):
            continue
        if row["fps"] is None or abs(row["fps"] - 25.0) > 1e-6:
            raise DatasetError(f"{path}: clip {row['clip_id']} has fps {row['fps']}; training expects 25 fps crops")
        out.append(ClipRecord(row["clip_id"], root / row["video"], root / row["faces"], root / row["audio_features"],
                              int(row["n_frames"]), int(row["crop_size"]), row["emotion"], row["level"],
                              row.get("speaker")))
    if not out:
        raise DatasetError(f"{path}: no clip with status 'ok' in split {split!r}")
    return sorted(out, key=lambda r: r.clip_id)


def whisper_record(audio_path: Path) -> dict:
    """The Whisper weights record ({'key', 'sha256', 'calibrated', ...}) stored in an audio-features file."""
    import pyarrow.parquet as pq

    from dicetalk_bench.preprocessing.audio_features import table_metadata

    meta = table_metadata(pq.read_schema(audio_path))
    if "whisper" not in meta:
        raise DatasetError(f"{audio_path}: no 'whisper' record in the schema metadata; re-run preprocessing")
    return dict(meta["whisper"])


@dataclass(frozen=True)
class WindowKey:
    clip: int
    start: int  # first 25-fps frame
    reference: int  # 25-fps frame used as the identity reference


def window_keys(records: Sequence[ClipRecord], span: int, batch_size: int, seed: int, step: int) -> list[WindowKey]:
    """The batch of window keys of training step ``step``: a pure function of (seed, step) (exact resume)."""
    rng = np.random.default_rng([seed, step])
    keys = []
    for _ in range(batch_size):
        c = int(rng.integers(len(records)))
        n = records[c].n_frames
        if n < span:
            raise DatasetError(f"clip {records[c].clip_id} has {n} frames; a window needs {span}")
        keys.append(WindowKey(c, int(rng.integers(n - span + 1)), int(rng.integers(n))))
    return keys


class WindowDataset:
    """Decoded training windows; clips are decoded once and kept (meant for small sets and tests; large sets
    should be read by DataLoader workers, which this class supports since it only holds paths until used)."""

    def __init__(self, records: Sequence[ClipRecord], priors: Mapping[str, np.ndarray], *, num_frames: int = 25,
                 frame_stride: int = 2, resolution: int = 512, unlabelled_prior: str = "neutral",
                 clip_emotions: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None):
        """``priors``: class-mean priors (the condition of each clip, or with ``clip_emotions`` only what the
        checkpoints store for sampling); ``clip_emotions``: ``{clip_id: (mu, sigma)}`` per-clip Gaussians, given
        as ``prior`` = mu and ``prior_sigma`` = sigma (the training step draws z = mu + sigma * eps)."""
        self.records = list(records)
        self.clip_emotions = None if clip_emotions is None else {
            k: (np.asarray(m, np.float32).reshape(-1), np.asarray(s, np.float32).reshape(-1))
            for k, (m, s) in clip_emotions.items()}
        if self.clip_emotions is not None:
            missing = [r.clip_id for r in self.records if r.clip_id not in self.clip_emotions]
            if missing:
                raise DatasetError(f"no per-clip emotion embedding for clip(s) {missing[:3]}")
        self.priors = {k: np.asarray(v, np.float32).reshape(-1) for k, v in priors.items()}
        if self.clip_emotions is None and unlabelled_prior not in self.priors:
            raise DatasetError(f"priors lack {unlabelled_prior!r} (used for clips without an emotion label)")
        self.num_frames, self.frame_stride, self.resolution = num_frames, frame_stride, resolution
        self.unlabelled_prior = unlabelled_prior
        self._cache: dict[int, dict[str, np.ndarray]] = {}

    @property
    def span(self) -> int:
        """25-fps frames covered by one window."""
        return (self.num_frames - 1) * self.frame_stride + 1

    def _clip(self, i: int) -> dict[str, np.ndarray]:
        if i in self._cache:
            return self._cache[i]
        import pyarrow.parquet as pq

        from dicetalk_bench import media

        rec = self.records[i]
        video = media.read_video(rec.video).frames
        faces = pq.read_table(rec.faces, columns=["frame", "mask_box_crop"])
        boxes = np.asarray(faces.column("mask_box_crop").to_pylist(), np.float32)
        audio = pq.read_table(rec.audio, columns=["whisper"]).column("whisper").combine_chunks().to_numpy_ndarray()
        n = min(len(video), len(boxes), len(audio))
        if n < rec.n_frames - 1:
            raise DatasetError(f"clip {rec.clip_id}: video {len(video)}, faces {len(boxes)} and audio {len(audio)} "
                               f"frames, manifest says {rec.n_frames}")
        frames = torch.from_numpy(np.ascontiguousarray(video[:n])).permute(0, 3, 1, 2).float() / 127.5 - 1
        if frames.shape[-1] != self.resolution or frames.shape[-2] != self.resolution:
            frames = F.interpolate(frames, size=(self.resolution, self.resolution), mode="bilinear",
                                   antialias=True, align_corners=False)
        data = {"frames": frames.numpy(), "boxes": boxes[:n], "whisper": audio[:n]}
        self._cache[i] = data
        return data

    def __getitem__(self, key: WindowKey) -> dict[str, torch.Tensor]:
        rec = self.records[key.clip]
        data = self._clip(key.clip)
        idx = key.start + self.frame_stride * np.arange(self.num_frames)
        if idx[-1] >= len(data["frames"]):
            raise IndexError(f"window {key} runs past clip {rec.clip_id} ({len(data['frames'])} frames)")
        if self.clip_emotions is not None:
            mu, sigma = self.clip_emotions[rec.clip_id]
            emotion = {"prior": torch.from_numpy(mu).expand(self.num_frames, -1).clone(),  # (F, 256)
                       "prior_sigma": torch.from_numpy(sigma).expand(self.num_frames, -1).clone()}
        else:
            name = rec.emotion if rec.emotion else self.unlabelled_prior
            if name not in self.priors:
                raise DatasetError(f"no emotion prior for {name!r} (clip {rec.clip_id}); priors: {sorted(self.priors)}")
            emotion = {"prior": torch.from_numpy(self.priors[name]).expand(self.num_frames, -1).clone()}  # (F, 256)
        return {
            "frames": torch.from_numpy(data["frames"][idx]),  # (F, 3, R, R) in [-1, 1]
            "reference": torch.from_numpy(data["frames"][min(key.reference, len(data["frames"]) - 1)]),
            "face_mask": torch.from_numpy(box_masks(data["boxes"][idx], rec.crop_size, self.resolution)),
            "whisper": torch.from_numpy(whisper_windows(data["whisper"], idx)),  # (F, 10, 5, 384)
            "label": torch.tensor(emotion_class(rec.emotion, rec.level)),
            **emotion,
        }

    def batch(self, keys: Sequence[WindowKey]) -> dict[str, torch.Tensor]:
        items = [self[k] for k in keys]
        return {k: torch.stack([it[k] for it in items]) for k in items[0]}
