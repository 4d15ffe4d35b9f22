"""Our own MEAD emotion classifier for Emo-Acc: the training recipe, its checkpoint, and its EmotionClassifier adapter.

    python -m dicetalk_bench.metrics train-emotion --processed PREPROCESSED_DIR --out own_emotion.safetensors \
        [--epochs 200] [--seed 0] [--frames-per-video 8] [--views front]

The model is deliberately small: **multinomial logistic regression on fixed pixel features** of two face regions
(brows and mouth, where the action units that separate the MEAD emotions act), with **per-speaker feature
normalisation**. Why linear on fixed features and not a CNN: MEAD-train has few identities (the built-in demo has 4),
and a CNN fed whole faces learns identity before expression (a plain model was at chance on held-out speakers);
a linear model on speaker-centred region pixels trains in well under a second on the CPU, is deterministic for a
seed, and its whole protocol fits in one JSON file.

Protocol (every item is recorded in the checkpoint's JSON and in each Emo-Acc result):

1. **Input** -- square face crops made by :func:`dicetalk_bench.preprocessing.crop.square_face_crops`: side
   ``crop_scale`` x the larger side of the face box, centred on the box, resized to ``input_size`` (INTER_AREA).
   Training takes the box from the preprocessed ``faces/{clip_id}.parquet`` (``box_crop``); scoring takes it from the
   BlazeFace track of the scored video (Emo-Acc's own face tracking).
2. **Frames** -- ``frames_per_video`` frames per video at indices ``round(linspace(0, T - 1, K + 2)[1:-1])`` (evenly
   spaced, the first and last frame left out); the same rule at training and at scoring.
3. **Features** -- each region (a rectangle in face-box coordinates, :data:`REGIONS`) is cut from the crop, resized to
   ``region_size`` (W, H) with INTER_AREA, RGB / 255, flattened; the regions are concatenated: (T, F) float32.
4. **Per-speaker normalisation** -- subtract the speaker's mean feature, the mean over the sampled frames of all of
   that speaker's videos in the set. It needs no labels, only the speaker's unlabelled videos, so it is legitimate at
   test time; it assumes each speaker's set covers the emotions roughly as MEAD does (every test speaker in all
   8 emotions), which is the MEAD test protocol. Then ``(x - feature_mean) / feature_std`` with training statistics.
5. **Classifier** -- logits = x W^T + b over the 8 MEAD emotions (:data:`emotion.MEAD_EMOTIONS` order), trained with
   Adam (numpy), cross-entropy, L2 penalty, seeded initialisation and seeded mini-batch order.
6. **Video prediction** -- argmax of the mean frame logit (``mean-logit``); accuracy, per-class accuracy and the
   confusion matrix on the test split (speakers disjoint from training) are stored in the JSON.

Checkpoint: ``CKPT.safetensors`` (``weight`` (8, F), ``bias`` (8,), ``feature_mean`` (F,), ``feature_std`` (F,))
and ``CKPT.json`` (labels, input, regions, normalisation, frame sampling, training settings, the training manifest's
hash, the safetensors sha256, test metrics).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["REGIONS", "FORMAT_VERSION", "OwnEmotionProtocol", "OwnEmotionClassifier", "TrainEmotionConfig",
           "sample_frame_indices", "region_features", "speaker_means", "train_emotion", "load_own_classifier",
           "speaker_from_clip_id", "score_speaker_normalised", "main"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Face-box coordinates (x0, y0, x1, y1), box = [0, 1]^2. Placed on BlazeFace boxes, whose top edge is near the brows
# and bottom edge near the chin: the brow band covers brows and upper eyelids (AU1/2/4/5), the mouth band the lips
# and mouth corners (AU12/15/20/25/26).
REGIONS: Mapping[str, tuple[float, float, float, float]] = {
    "brows": (0.12, 0.08, 0.88, 0.42),
    "mouth": (0.20, 0.60, 0.80, 0.98),
}


@dataclasses.dataclass(frozen=True)
class OwnEmotionProtocol:
    """The input side of the protocol: how frames become features."""

    crop_scale: float = 1.2                 # square crop side / larger face-box side (Emo-Acc's default crop)
    input_size: int = 64                    # crop side in pixels before the regions are cut
    region_size: tuple[int, int] = (16, 8)  # (W, H) of each region after resizing
    frames_per_video: int = 8
    regions: tuple[tuple[str, tuple[float, float, float, float]], ...] = tuple(REGIONS.items())

    def to_json(self) -> dict[str, Any]:
        return {"crop_scale": self.crop_scale, "input_size": self.input_size, "region_size": list(self.region_size),
                "frames_per_video": self.frames_per_video,
                "regions": {name: list(rect) for name, rect in self.regions}}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> OwnEmotionProtocol:
        return cls(crop_scale=float(d["crop_scale"]), input_size=int(d["input_size"]),
                   region_size=(int(d["region_size"][0]), int(d["region_size"][1])),
                   frames_per_video=int(d["frames_per_video"]),
                   regions=tuple((str(k), tuple(float(v) for v in r)) for k, r in d["regions"].items()))

    @property
    def n_features(self) -> int:
        return len(self.regions) * self.region_size[0] * self.region_size[1] * 3


@dataclasses.dataclass(frozen=True)
class TrainEmotionConfig:
    """Training settings (recorded in the checkpoint JSON)."""

    protocol: OwnEmotionProtocol = OwnEmotionProtocol()
    epochs: int = 200
    seed: int = 0
    lr: float = 0.01
    weight_decay: float = 1e-3
    batch_size: int = 64
    views: tuple[str, ...] | None = None    # MEAD views to use (None: every view in the manifest)


# ---------------------------------------------------------------------------------------------------------------
# Pure parts: frame sampling, features, speaker normalisation
# ---------------------------------------------------------------------------------------------------------------
def sample_frame_indices(n_frames: int, k: int) -> np.ndarray:
    """``k`` evenly spaced frame indices in [0, n_frames), first and last frame left out (fewer frames: all)."""
    if n_frames <= 0:
        raise ValueError(f"cannot sample frames from a video of {n_frames} frames")
    if k <= 0:
        raise ValueError(f"frames_per_video must be positive, got {k}")
    if n_frames <= k:
        return np.arange(n_frames)
    return np.round(np.linspace(0, n_frames - 1, k + 2)[1:-1]).astype(np.int64)


def _region_pixels(rect: Sequence[float], crop_scale: float, size: int) -> tuple[int, int, int, int]:
    """Face-box rectangle -> pixel rectangle of a ``size`` crop whose side is ``crop_scale`` x the box side."""
    to_px = [int(round((0.5 + (v - 0.5) / crop_scale) * size)) for v in rect]
    x0, y0, x1, y1 = (min(max(v, 0), size) for v in to_px)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"region {tuple(rect)} is empty in a {size}px crop with crop_scale {crop_scale}")
    return x0, y0, x1, y1


def region_features(crops: np.ndarray, protocol: OwnEmotionProtocol) -> np.ndarray:
    """(T, S, S, 3) uint8 RGB square face crops -> (T, F) float32 features (regions resized, / 255, concatenated)."""
    import cv2

    crops = np.asarray(crops)
    if crops.ndim != 4 or crops.shape[-1] != 3 or crops.dtype != np.uint8 or crops.shape[1] != crops.shape[2]:
        raise ValueError(f"expected (T, S, S, 3) uint8 RGB square face crops, got {crops.shape} {crops.dtype}")
    size = protocol.input_size
    rects = [_region_pixels(r, protocol.crop_scale, size) for _, r in protocol.regions]
    out = np.empty((len(crops), protocol.n_features), np.float32)
    for t, crop in enumerate(crops):
        if crop.shape[0] != size:
            crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        parts = [cv2.resize(crop[y0:y1, x0:x1], protocol.region_size, interpolation=cv2.INTER_AREA).ravel()
                 for x0, y0, x1, y1 in rects]
        out[t] = np.concatenate(parts).astype(np.float32) / 255.0
    return out


def speaker_means(features: Mapping[str, np.ndarray], speakers: Mapping[str, str]) -> dict[str, np.ndarray]:
    """Per-speaker mean feature over all frames of all the speaker's videos: {video: (T, F)} -> {speaker: (F,)}."""
    groups: dict[str, list[np.ndarray]] = {}
    for vid, f in features.items():
        if vid not in speakers:
            raise ValueError(f"video {vid!r} has no speaker; per-speaker normalisation needs one for every video")
        groups.setdefault(speakers[vid], []).append(np.asarray(f, np.float64))
    return {spk: np.concatenate(fs).mean(axis=0) for spk, fs in groups.items()}


_SPEAKER_RE = re.compile(r"^[mw]\d{3}$")


def speaker_from_clip_id(clip_id: str) -> str | None:
    """MEAD speaker named in a clip id (a path part or ``_``/``-``-separated token like ``M003``), else None."""
    found = {tok.upper() for tok in re.split(r"[/_\-.\s]+", clip_id.lower()) if _SPEAKER_RE.match(tok)}
    return found.pop() if len(found) == 1 else None


# ---------------------------------------------------------------------------------------------------------------
# The classifier (EmotionClassifier adapter)
# ---------------------------------------------------------------------------------------------------------------
class OwnEmotionClassifier:
    """:class:`~dicetalk_bench.metrics.emotion.EmotionClassifier` adapter for a ``train-emotion`` checkpoint.

    Labels are the MEAD names themselves. ``frame_logits`` needs the speaker's mean feature (per-speaker
    normalisation): get a bound copy with :meth:`for_speaker` (see :func:`score_speaker_normalised`).
    """

    def __init__(self, weight: np.ndarray, bias: np.ndarray, feature_mean: np.ndarray, feature_std: np.ndarray,
                 protocol: OwnEmotionProtocol, meta: Mapping[str, Any] | None = None,
                 speaker_mean: np.ndarray | None = None) -> None:
        from dicetalk_bench.metrics.emotion import MEAD_EMOTIONS

        self.labels: tuple[str, ...] = MEAD_EMOTIONS
        self.label_map: Mapping[str, str] = {lab: lab for lab in MEAD_EMOTIONS}
        f = protocol.n_features
        shapes = {"weight": (weight.shape, (len(self.labels), f)), "bias": (bias.shape, (len(self.labels),)),
                  "feature_mean": (feature_mean.shape, (f,)), "feature_std": (feature_std.shape, (f,))}
        bad = {k: v for k, v in shapes.items() if tuple(v[0]) != v[1]}
        if bad:
            raise ValueError(f"own emotion classifier: tensor shapes {bad} (got, expected) do not fit the protocol "
                             f"({f} features)")
        self.weight = np.asarray(weight, np.float64)
        self.bias = np.asarray(bias, np.float64)
        self.feature_mean = np.asarray(feature_mean, np.float64)
        self.feature_std = np.asarray(feature_std, np.float64)
        self.protocol = protocol
        self.meta = dict(meta or {})
        self.speaker_mean = None if speaker_mean is None else np.asarray(speaker_mean, np.float64)

    def features(self, frames: np.ndarray) -> np.ndarray:
        """(T, S, S, 3) uint8 face crops -> (T, F) raw region features."""
        return region_features(frames, self.protocol)

    def for_speaker(self, speaker_mean: np.ndarray) -> OwnEmotionClassifier:
        """A copy bound to one speaker's mean feature (F,)."""
        return OwnEmotionClassifier(self.weight, self.bias, self.feature_mean, self.feature_std, self.protocol,
                                    self.meta, speaker_mean)

    def logits_from_features(self, feats: np.ndarray, speaker_mean: np.ndarray) -> np.ndarray:
        """(T, F) raw features and the speaker mean (F,) -> (T, 8) logits."""
        x = (np.asarray(feats, np.float64) - speaker_mean - self.feature_mean) / self.feature_std
        return x @ self.weight.T + self.bias

    def frame_logits(self, frames: np.ndarray) -> np.ndarray:
        """(T, S, S, 3) uint8 RGB face crops -> (T, 8) logits (MEAD order); needs :meth:`for_speaker` first."""
        if self.speaker_mean is None:
            raise ValueError("the own emotion classifier normalises per speaker: bind the speaker's mean feature "
                             "with for_speaker() (score_speaker_normalised does this)")
        return self.logits_from_features(self.features(frames), self.speaker_mean)


def score_speaker_normalised(classifier: OwnEmotionClassifier, videos: Mapping[str, np.ndarray],
                             truth: Mapping[str, str], speakers: Mapping[str, str],
                             aggregation: str = "mean-logit"):
    """Emo-Acc with per-speaker normalisation: sample frames (protocol rule), compute each speaker's mean feature
    over its videos, classify each video with the classifier bound to its speaker's mean, then accuracy.

    ``videos``: {clip id: (T, S, S, 3) uint8 face crops}; ``speakers``: {clip id: speaker}. Returns an
    :class:`~dicetalk_bench.metrics.emotion.EmotionAccuracy`.
    """
    from dicetalk_bench.metrics.emotion import emotion_accuracy, score_emotion

    k = classifier.protocol.frames_per_video
    sampled: dict[str, np.ndarray] = {}
    failures: dict[str, str] = {}
    feats: dict[str, np.ndarray] = {}
    for vid, frames in videos.items():
        try:
            sampled[vid] = np.asarray(frames)[sample_frame_indices(len(frames), k)]
            feats[vid] = classifier.features(sampled[vid])
        except ValueError as exc:
            log.warning("emotion: video %s failed: %s", vid, exc)
            failures[vid] = f"{type(exc).__name__}: {exc}"
    means = speaker_means(feats, speakers)
    preds: dict[str, str] = {}
    for spk, mean in sorted(means.items()):
        ids = [v for v in sampled if speakers[v] == spk]
        acc = score_emotion(classifier.for_speaker(mean), {v: sampled[v] for v in ids}, {v: truth[v] for v in ids},
                            aggregation=aggregation)  # type: ignore[arg-type]
        preds.update(acc.predictions)
        failures.update(acc.failures)
    if not preds:
        raise ValueError(f"no video could be classified; failures: {failures}")
    return emotion_accuracy(preds, truth, failures)


# ---------------------------------------------------------------------------------------------------------------
# Checkpoint
# ---------------------------------------------------------------------------------------------------------------
def _paths(ckpt: str | Path) -> tuple[Path, Path]:
    ckpt = Path(ckpt)
    if ckpt.suffix != ".safetensors":
        ckpt = ckpt.with_name(ckpt.name + ".safetensors")
    return ckpt, ckpt.with_suffix(".json")


def save_checkpoint(ckpt: str | Path, tensors: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> tuple[Path, Path]:
    """Write ``CKPT.safetensors`` then ``CKPT.json`` (meta + the safetensors sha256), each atomically."""
    from safetensors.numpy import save_file

    from dicetalk_bench.fileutil import atomic_path, atomic_write_bytes, sha256_file

    st_path, json_path = _paths(ckpt)
    st_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(st_path, suffix=".safetensors") as tmp:
        save_file({k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}, str(tmp),
                  metadata={"dicetalk_bench.format": f"own-emotion-v{FORMAT_VERSION}"})
    meta = dict(meta) | {"weights_file": st_path.name, "weights_sha256": sha256_file(st_path)}
    atomic_write_bytes(json_path, (json.dumps(meta, indent=2, sort_keys=False) + "\n").encode())
    return st_path, json_path


def load_own_classifier(path: str | Path) -> tuple[OwnEmotionClassifier, dict[str, Any]]:
    """Load a ``train-emotion`` checkpoint (the .safetensors or the .json path) -> (classifier, extractor record).

    The JSON's recorded sha256 must match the safetensors file. The record is ``{"key": "own-emotion", "file",
    "sha256", "calibrated": False}`` (no official hash exists for an own model; the sha256 identifies it).
    """
    from safetensors.numpy import load_file

    from dicetalk_bench.fileutil import sha256_file

    p = Path(path)
    st_path, json_path = _paths(p.with_suffix("") if p.suffix == ".json" else p)
    for f in (st_path, json_path):
        if not f.is_file():
            raise FileNotFoundError(f"own emotion classifier: {f} not found (a checkpoint is a .safetensors file and "
                                    f"its .json beside it, written by `python -m dicetalk_bench.metrics "
                                    f"train-emotion`)")
    try:
        meta = json.loads(json_path.read_text())
        protocol = OwnEmotionProtocol.from_json(meta["input"])
        labels = tuple(meta["labels"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{json_path}: not an own-emotion checkpoint description ({type(exc).__name__}: {exc})") \
            from exc
    from dicetalk_bench.metrics.emotion import MEAD_EMOTIONS

    if labels != MEAD_EMOTIONS:
        raise ValueError(f"{json_path}: labels {labels} differ from the MEAD order {MEAD_EMOTIONS}")
    sha = sha256_file(st_path)
    if meta.get("weights_sha256") != sha:
        raise ValueError(f"{st_path}: sha256 {sha} differs from the {meta.get('weights_sha256')} recorded in "
                         f"{json_path}; the weights and their description do not belong together")
    try:
        t = load_file(str(st_path))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise ValueError(f"{st_path}: cannot read as safetensors ({exc})") from exc
    missing = {"weight", "bias", "feature_mean", "feature_std"} - set(t)
    if missing:
        raise ValueError(f"{st_path}: missing tensors {sorted(missing)}")
    clf = OwnEmotionClassifier(t["weight"], t["bias"], t["feature_mean"], t["feature_std"], protocol, meta)
    record = {"key": "own-emotion", "file": str(st_path), "sha256": sha, "calibrated": False}
    return clf, record


# ---------------------------------------------------------------------------------------------------------------
# Data: preprocessed crops -> per-clip sampled features
# ---------------------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _ClipFeatures:
    clip_id: str
    speaker: str
    emotion: str
    split: str
    features: np.ndarray  # (K, F)


def _read_manifest(processed: Path, views: Sequence[str] | None) -> tuple[list[dict[str, Any]], str]:
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


def _clip_features(processed: Path, row: Mapping[str, Any], protocol: OwnEmotionProtocol) -> np.ndarray:
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


def _load_clips(processed: Path, rows: Sequence[Mapping[str, Any]], protocol: OwnEmotionProtocol
                ) -> tuple[list[_ClipFeatures], dict[str, str]]:
    from dicetalk_bench.metrics.emotion import MEAD_EMOTIONS

    clips, failures = [], {}
    for row in rows:
        if row["emotion"] not in MEAD_EMOTIONS:
            failures[row["clip_id"]] = f"emotion {row['emotion']!r} is not a MEAD emotion"
            continue
        try:
            feats = _clip_features(processed, row, protocol)
        except Exception as exc:  # noqa: BLE001 - one bad clip is recorded, training goes on
            log.warning("train-emotion: %s skipped: %s", row["clip_id"], exc)
            failures[row["clip_id"]] = f"{type(exc).__name__}: {exc}"
            continue
        clips.append(_ClipFeatures(row["clip_id"], row["speaker"], row["emotion"], row["split"], feats))
    return clips, failures


def _centred(clips: Sequence[_ClipFeatures]) -> dict[str, np.ndarray]:
    """{clip id: (K, F) features minus the clip's speaker mean} (means over these clips only)."""
    feats = {c.clip_id: c.features for c in clips}
    spk = {c.clip_id: c.speaker for c in clips}
    means = speaker_means(feats, spk)
    return {c.clip_id: c.features - means[c.speaker] for c in clips}


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------
def _fit_softmax(x: np.ndarray, y: np.ndarray, n_classes: int, cfg: TrainEmotionConfig
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by mini-batch Adam (Kingma & Ba 2015: beta1 0.9, beta2 0.999, eps 1e-8) on
    the mean cross-entropy plus ``weight_decay / 2 * |W|^2`` (the bias is not decayed). Plain numpy float64: the
    problem is tiny and torch's per-step overhead dominated on a loaded CPU.

    Seeded: W ~ N(0, 0.01^2) and the mini-batch order come from ``np.random.default_rng(seed)``.
    x (N, F), y (N,) int -> W (C, F), b (C,).
    """
    rng = np.random.default_rng(cfg.seed)
    x = np.asarray(x, np.float64)
    onehot = np.eye(n_classes)[np.asarray(y, np.int64)]
    params = [0.01 * rng.standard_normal((n_classes, x.shape[1])), np.zeros(n_classes)]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    beta1, beta2, eps, step = 0.9, 0.999, 1e-8, 0
    for _ in range(cfg.epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            z = x[idx] @ params[0].T + params[1]
            z -= z.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
            g = (p - onehot[idx]) / len(idx)
            grads = [g.T @ x[idx] + cfg.weight_decay * params[0], g.sum(axis=0)]
            step += 1
            for k in range(2):
                m[k] = beta1 * m[k] + (1 - beta1) * grads[k]
                v[k] = beta2 * v[k] + (1 - beta2) * grads[k] ** 2
                m_hat = m[k] / (1 - beta1 ** step)
                v_hat = v[k] / (1 - beta2 ** step)
                params[k] = params[k] - cfg.lr * m_hat / (np.sqrt(v_hat) + eps)
    return params[0], params[1]


def _manifest_hash(clips: Sequence[_ClipFeatures], rows: Sequence[Mapping[str, Any]]) -> str:
    """sha256 over the sorted (clip id, source video sha256, config hash) of the clips used."""
    by_id = {r["clip_id"]: r for r in rows}
    h = hashlib.sha256()
    for c in sorted(clips, key=lambda c: c.clip_id):
        r = by_id[c.clip_id]
        h.update(f"{c.clip_id}\t{r.get('src_video_sha256')}\t{r.get('config_hash')}\n".encode())
    return h.hexdigest()


def train_emotion(processed: str | Path, out: str | Path, config: TrainEmotionConfig = TrainEmotionConfig()
                  ) -> dict[str, Any]:
    """Train on the ``train`` split of a preprocessed MEAD folder, evaluate on its ``test`` split, save the checkpoint.

    Returns the checkpoint description (the JSON written beside ``out``), including ``test_metrics``.
    Raises FileNotFoundError / ValueError naming the folder when there is no usable training or test data.
    """
    from dicetalk_bench.metrics.emotion import MEAD_EMOTIONS

    processed = Path(processed)
    protocol = config.protocol
    rows, clips_sha = _read_manifest(processed, config.views)
    clips, failures = _load_clips(processed, rows, protocol)
    train = [c for c in clips if c.split == "train"]
    test = [c for c in clips if c.split == "test"]
    if not train:
        raise ValueError(f"{processed}: no usable MEAD clips in the train split ({len(failures)} failed)")
    missing = sorted(set(MEAD_EMOTIONS) - {c.emotion for c in train})
    if missing:
        raise ValueError(f"{processed}: the train split has no clip of {missing}; every MEAD emotion is needed")
    if not test:
        raise ValueError(f"{processed}: no usable MEAD clips in the test split, cannot report held-out accuracy")
    overlap = {c.speaker for c in train} & {c.speaker for c in test}
    if overlap:
        raise ValueError(f"{processed}: speakers {sorted(overlap)} are in both splits; the protocol needs disjoint "
                         f"speakers")

    centred = _centred(train)
    x = np.concatenate([centred[c.clip_id] for c in train])
    y = np.concatenate([np.full(len(c.features), MEAD_EMOTIONS.index(c.emotion)) for c in train])
    mu = x.mean(axis=0)
    sd = x.std(axis=0) + 1e-3  # floor: constant pixels (black padding) would divide by zero
    w, b = _fit_softmax((x - mu) / sd, y, len(MEAD_EMOTIONS), config)

    clf = OwnEmotionClassifier(w, b, mu, sd, protocol)
    test_centred = _centred(test)  # each test speaker's own mean: the same rule as at scoring time
    preds = {c.clip_id: MEAD_EMOTIONS[int(np.argmax(clf.logits_from_features(test_centred[c.clip_id], 0.0)
                                                    .mean(axis=0)))] for c in test}
    train_preds = {c.clip_id: MEAD_EMOTIONS[int(np.argmax(clf.logits_from_features(centred[c.clip_id], 0.0)
                                                          .mean(axis=0)))] for c in train}
    from dicetalk_bench.metrics.emotion import emotion_accuracy

    acc = emotion_accuracy(preds, {c.clip_id: c.emotion for c in test})
    train_acc = emotion_accuracy(train_preds, {c.clip_id: c.emotion for c in train})
    meta = {
        "format": f"own-emotion-v{FORMAT_VERSION}",
        "model": "multinomial logistic regression on brow/mouth region pixels, per-speaker normalised",
        "labels": list(MEAD_EMOTIONS),
        "input": protocol.to_json() | {
            "colour": "RGB", "scale": "uint8 / 255", "resize": "cv2 INTER_AREA",
            "crop": "preprocessing.crop.square_face_crops: side crop_scale x larger face-box side, centred on the box",
            "frame_sampling": "round(linspace(0, T - 1, K + 2)[1:-1]), K = frames_per_video"},
        "normalisation": {"per_speaker_mean": True,
                          "rule": "x - mean feature of the speaker's sampled frames over all its videos in the set; "
                                  "then (x - feature_mean) / feature_std (training statistics, std + 1e-3)"},
        "aggregation": "mean-logit",
        "training": {"seed": config.seed, "epochs": config.epochs, "lr": config.lr,
                     "weight_decay": config.weight_decay, "batch_size": config.batch_size,
                     "optimizer": "Adam (numpy, mini-batch)",
                     "loss": "mean cross-entropy + weight_decay/2 |W|^2", "views": list(config.views or []) or "all",
                     "processed": str(processed), "clips_parquet_sha256": clips_sha,
                     "train_manifest_sha256": _manifest_hash(train, rows),
                     "test_manifest_sha256": _manifest_hash(test, rows),
                     "n_train_clips": len(train), "n_train_frames": int(len(x)),
                     "train_speakers": sorted({c.speaker for c in train}),
                     "test_speakers": sorted({c.speaker for c in test}),
                     "failures": failures, "train_accuracy": train_acc.accuracy},
        "test_metrics": {"accuracy": acc.accuracy, "n_videos": acc.n_videos, "chance": 100.0 / len(MEAD_EMOTIONS),
                         "per_class": dict(acc.per_class), "confusion": acc.confusion.tolist(),
                         "confusion_axes": "rows true, columns predicted, labels order"},
    }
    st_path, json_path = save_checkpoint(out, {"weight": w, "bias": b, "feature_mean": mu, "feature_std": sd}, meta)
    log.info("train-emotion: %d train clips (%d frames), test accuracy %.1f%% on %d videos of %s (chance 12.5%%); "
             "wrote %s and %s", len(train), len(x), acc.accuracy, acc.n_videos, meta["training"]["test_speakers"],
             st_path, json_path)
    return json.loads(json_path.read_text())


# ---------------------------------------------------------------------------------------------------------------
# CLI (wired as `python -m dicetalk_bench.metrics train-emotion` through EXTRA_COMMANDS)
# ---------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    d, p = TrainEmotionConfig(), OwnEmotionProtocol()
    parser = argparse.ArgumentParser(
        prog="python -m dicetalk_bench.metrics train-emotion",
        description="Train our own MEAD emotion classifier (Emo-Acc) from preprocessed face crops: train split -> "
                    "CKPT.safetensors + CKPT.json with the protocol and the test-split accuracy.")
    parser.add_argument("--processed", type=Path, required=True, help="output folder of dicetalk_bench.preprocess")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint path (.safetensors; .json beside it)")
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--frames-per-video", type=int, default=p.frames_per_video)
    parser.add_argument("--crop-scale", type=float, default=p.crop_scale)
    parser.add_argument("--input-size", type=int, default=p.input_size)
    parser.add_argument("--views", nargs="+", default=None, help="MEAD views to use (default: all in the manifest)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    for name in ("epochs", "batch_size", "frames_per_video", "input_size"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.crop_scale < 1.0:
        raise SystemExit(f"error: --crop-scale must be >= 1 (the crop holds the face box), got {args.crop_scale}")
    cfg = TrainEmotionConfig(
        protocol=OwnEmotionProtocol(crop_scale=args.crop_scale, input_size=args.input_size,
                                    frames_per_video=args.frames_per_video),
        epochs=args.epochs, seed=args.seed, lr=args.lr, weight_decay=args.weight_decay, batch_size=args.batch_size,
        views=tuple(args.views) if args.views else None)
    try:
        meta = train_emotion(args.processed, args.out, cfg)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from exc
    m = meta["test_metrics"]
    sys.stdout.write(f"test accuracy {m['accuracy']:.1f}% on {m['n_videos']} videos (chance {m['chance']:.1f}%)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
