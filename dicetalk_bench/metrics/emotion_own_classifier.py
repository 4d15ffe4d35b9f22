"""Our own MEAD emotion classifier as an :class:`~dicetalk_bench.metrics.emotion.EmotionClassifier`, and Emo-Acc
with per-speaker normalisation (:func:`score_speaker_normalised`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from .emotion_own_features import OwnEmotionProtocol, region_features, sample_frame_indices, speaker_means

log = logging.getLogger(__name__)


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
