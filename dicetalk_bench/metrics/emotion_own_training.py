"""Training our own MEAD emotion classifier: softmax regression by numpy Adam on speaker-centred, standardised
region features of the train split, evaluated on the (speaker-disjoint) test split, saved as a checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from .emotion_own_checkpoint import FORMAT_VERSION, save_checkpoint
from .emotion_own_classifier import OwnEmotionClassifier
from .emotion_own_dataset import load_clips, manifest_hash, read_manifest, speaker_centred
from .emotion_own_features import OwnEmotionProtocol

log = logging.getLogger(__name__)


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


def fit_softmax(x: np.ndarray, y: np.ndarray, n_classes: int, cfg: TrainEmotionConfig
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


def train_emotion(processed: str | Path, out: str | Path, config: TrainEmotionConfig = TrainEmotionConfig()
                  ) -> dict[str, Any]:
    """Train on the ``train`` split of a preprocessed MEAD folder, evaluate on its ``test`` split, save the checkpoint.

    Returns the checkpoint description (the JSON written beside ``out``), including ``test_metrics``.
    Raises FileNotFoundError / ValueError naming the folder when there is no usable training or test data.
    """
    from dicetalk_bench.metrics.emotion import MEAD_EMOTIONS

    processed = Path(processed)
    protocol = config.protocol
    rows, clips_sha = read_manifest(processed, config.views)
    clips, failures = load_clips(processed, rows, protocol)
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

    centred = speaker_centred(train)
    x = np.concatenate([centred[c.clip_id] for c in train])
    y = np.concatenate([np.full(len(c.features), MEAD_EMOTIONS.index(c.emotion)) for c in train])
    mu = x.mean(axis=0)
    sd = x.std(axis=0) + 1e-3  # floor: constant pixels (black padding) would divide by zero
    w, b = fit_softmax((x - mu) / sd, y, len(MEAD_EMOTIONS), config)

    clf = OwnEmotionClassifier(w, b, mu, sd, protocol)
    test_centred = speaker_centred(test)  # each test speaker's own mean: the same rule as at scoring time
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
                     "train_manifest_sha256": manifest_hash(train, rows),
                     "test_manifest_sha256": manifest_hash(test, rows),
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
