"""Emotion accuracy (Emo-Acc): classifier interface, label maps onto the 8 MEAD emotions, aggregation, accuracy.

An :class:`EmotionClassifier` maps face frames to per-frame logits over the labels it declares; ``label_map`` sends
each declared label to a MEAD name. A video's prediction is made by one of three aggregation modes:
    ``attention``  Emotion-FAN's second-level (self + relation attention) pooling, as EAT's evaluation computes it;
    ``mean-logit`` argmax of the mean of the per-frame logits;
    ``majority``   the most frequent per-frame argmax (ties: the tied class with the larger mean logit).
Accuracy is video-level top-1 over the videos, with per-class accuracy and the confusion matrix (rows = true MEAD
label, columns = predicted).

Emotion-FAN adapter: ResNet18 with frame attention (Meng et al. 2019), parameter names as in
yuangan/evaluation_eat ``code/emotionfan_basiccode/networks.py`` (``resnet18_at``; reference list
``tests/data/emotion_fan_resnet18_at.tsv``). The checkpoint is EAT's ``self_relation-attention_61_84.3655``:
``{"epoch", "state_dict" (DataParallel, keys prefixed "module."), "accuracy", "name"}``. Class order (EAT
``cate2label['MEAD']``): Happy, Angry, Disgust, Fear, Sad, Neutral, Surprised, Contempt. Input: RGB face crops resized
to 224 x 224 in [0, 1] (torchvision ToTensor, no mean/std).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
from torch import nn

from dicetalk_bench.datasets import MEAD_EMOTIONS
from dicetalk_bench.weights.random_weights import randomise_batchnorm_statistics_, register_random_builder

__all__ = [
    "MEAD_EMOTIONS", "EAT_FAN_LABELS", "EAT_FAN_TO_MEAD", "HSEMOTION_8_LABELS", "HSEMOTION_8_TO_MEAD",
    "Aggregation", "EmotionClassifier", "EmotionAccuracy", "to_mead_logits", "aggregate_video", "emotion_accuracy",
    "score_emotion", "EmotionFAN", "EmotionFanClassifier", "load_emotion_fan", "write_random_weights",
]

log = logging.getLogger(__name__)

WEIGHTS_KEY = "emotion-fan"
# EAT / Emotion-FAN MEAD-8 order (evaluation_eat load.py cate2label['MEAD'])
EAT_FAN_LABELS: tuple[str, ...] = ("Happy", "Angry", "Disgust", "Fear", "Sad", "Neutral", "Surprised", "Contempt")
EAT_FAN_TO_MEAD: Mapping[str, str] = {"Happy": "happy", "Angry": "angry", "Disgust": "disgusted", "Fear": "fear",
                                      "Sad": "sad", "Neutral": "neutral", "Surprised": "surprised",
                                      "Contempt": "contempt"}
# HSEmotion AffectNet-8 order (hsemotion 0.3.0 idx_to_class)
HSEMOTION_8_LABELS: tuple[str, ...] = ("Anger", "Contempt", "Disgust", "Fear", "Happiness", "Neutral", "Sadness",
                                       "Surprise")
HSEMOTION_8_TO_MEAD: Mapping[str, str] = {"Anger": "angry", "Contempt": "contempt", "Disgust": "disgusted",
                                          "Fear": "fear", "Happiness": "happy", "Neutral": "neutral",
                                          "Sadness": "sad", "Surprise": "surprised"}

Aggregation = Literal["attention", "mean-logit", "majority"]


class EmotionClassifier(Protocol):
    """Frames -> per-frame logits over ``labels``; ``label_map`` sends each label to a MEAD name."""

    labels: tuple[str, ...]
    label_map: Mapping[str, str]

    def frame_logits(self, frames: np.ndarray) -> np.ndarray: ...  # (T, H, W, 3) uint8 RGB -> (T, len(labels))


def to_mead_logits(logits: np.ndarray, labels: Sequence[str], label_map: Mapping[str, str]) -> np.ndarray:
    """(..., len(labels)) logits -> (..., 8) in MEAD_EMOTIONS order; MEAD classes the classifier lacks get -inf."""
    logits = np.asarray(logits, dtype=np.float64)
    if logits.shape[-1] != len(labels):
        raise ValueError(f"classifier declares {len(labels)} labels but gave {logits.shape[-1]} logits")
    unknown = [lab for lab in labels if label_map.get(lab) not in MEAD_EMOTIONS]
    if unknown:
        raise ValueError(f"labels {unknown} have no MEAD name in the label map (MEAD names: {MEAD_EMOTIONS})")
    targets = [label_map[lab] for lab in labels]
    if len(set(targets)) != len(targets):
        raise ValueError(f"label map is not one-to-one: {dict(zip(labels, targets))}")
    out = np.full(logits.shape[:-1] + (len(MEAD_EMOTIONS),), -np.inf)
    for src, name in enumerate(targets):
        out[..., MEAD_EMOTIONS.index(name)] = logits[..., src]
    return out


def aggregate_video(frame_logits_mead: np.ndarray, mode: Aggregation) -> int:
    """(T, 8) per-frame MEAD logits -> predicted MEAD index ('mean-logit' or 'majority'; 'attention' needs the FAN)."""
    x = np.asarray(frame_logits_mead, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"expected (T>0, 8) frame logits, got shape {x.shape}")
    mean = np.mean(np.where(np.isfinite(x), x, -1e30), axis=0)
    if mode == "mean-logit":
        return int(np.argmax(mean))
    if mode == "majority":
        votes = np.bincount(np.argmax(x, axis=1), minlength=x.shape[1])
        tied = np.flatnonzero(votes == votes.max())
        return int(tied[np.argmax(mean[tied])])
    raise ValueError(f"aggregation {mode!r} is not a frame-logit mode; use 'mean-logit', 'majority' or, with "
                     f"Emotion-FAN, 'attention'")


@dataclass(frozen=True)
class EmotionAccuracy:
    """Video-level top-1 accuracy in percent, per-class accuracy (None where a class has no video), confusion."""

    accuracy: float
    n_videos: int
    per_class: Mapping[str, float | None]
    confusion: np.ndarray               # (8, 8) int, rows true, cols predicted, MEAD_EMOTIONS order
    predictions: Mapping[str, str] = field(default_factory=dict)
    failures: Mapping[str, str] = field(default_factory=dict)


def emotion_accuracy(predicted: Mapping[str, str], truth: Mapping[str, str],
                     failures: Mapping[str, str] | None = None) -> EmotionAccuracy:
    """Accuracy of ``predicted`` MEAD labels against ``truth`` over the videos in ``predicted``."""
    conf = np.zeros((len(MEAD_EMOTIONS), len(MEAD_EMOTIONS)), dtype=np.int64)
    for vid, pred in predicted.items():
        if vid not in truth:
            raise ValueError(f"video {vid!r} has a prediction but no true label")
        t, p = truth[vid], pred
        for name in (t, p):
            if name not in MEAD_EMOTIONS:
                raise ValueError(f"video {vid!r}: {name!r} is not a MEAD emotion {MEAD_EMOTIONS}")
        conf[MEAD_EMOTIONS.index(t), MEAD_EMOTIONS.index(p)] += 1
    n = int(conf.sum())
    if n == 0:
        raise ValueError("no videos to score for emotion accuracy")
    per_class = {name: (float(100.0 * conf[i, i] / conf[i].sum()) if conf[i].sum() else None)
                 for i, name in enumerate(MEAD_EMOTIONS)}
    return EmotionAccuracy(accuracy=float(100.0 * np.trace(conf) / n), n_videos=n, per_class=per_class,
                           confusion=conf, predictions=dict(predicted), failures=dict(failures or {}))


def score_emotion(classifier: EmotionClassifier, videos: Mapping[str, np.ndarray], truth: Mapping[str, str],
                  aggregation: Aggregation = "mean-logit") -> EmotionAccuracy:
    """Classify each video's face frames ((T, H, W, 3) uint8 RGB) and compute accuracy against ``truth``.

    A video whose true label the classifier cannot output (e.g. contempt with a 7-class model) is refused.
    A video without face frames is recorded in ``failures`` and left out of the accuracy computed here (the
    registry's Emo-Acc then counts it as wrong); a classifier error is a bug and propagates.
    """
    mapped = {classifier.label_map[lab] for lab in classifier.labels if lab in classifier.label_map}
    lacking = sorted({t for t in truth.values() if t not in mapped})
    if lacking:
        raise ValueError(f"the classifier cannot predict {lacking} (its labels map to {sorted(mapped)}); "
                         f"accuracy on those videos would be meaningless")
    if aggregation not in ("attention", "mean-logit", "majority"):
        raise ValueError(f"unknown aggregation {aggregation!r}; expected 'attention', 'mean-logit' or 'majority'")
    if aggregation == "attention" and not hasattr(classifier, "video_logits"):
        raise ValueError("aggregation 'attention' needs a classifier with video-level attention (Emotion-FAN)")
    preds: dict[str, str] = {}
    failures: dict[str, str] = {}
    for vid, frames in videos.items():
        if len(frames) == 0:
            log.warning("emotion: video %s has no face frames", vid)
            failures[vid] = "no face frames to classify"
            continue
        if aggregation == "attention":
            logits = to_mead_logits(classifier.video_logits(frames)[None], classifier.labels,
                                    classifier.label_map)[0]
            idx = int(np.argmax(logits))
        else:
            idx = aggregate_video(to_mead_logits(classifier.frame_logits(frames), classifier.labels,
                                                 classifier.label_map), aggregation)
        preds[vid] = MEAD_EMOTIONS[idx]
    return emotion_accuracy(preds, truth, failures)


# ---------------------------------------------------------------------------------------------------------------
# Emotion-FAN (ResNet18 + frame attention), parameter names of evaluation_eat networks.resnet18_at
# ---------------------------------------------------------------------------------------------------------------
class _BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class EmotionFAN(nn.Module):
    """Emotion-FAN ResNet18-AT with the MEAD-8 heads (``alpha``, ``beta``, ``pred_fc1``, ``pred_fc2``)."""

    def __init__(self, num_classes: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths, inplanes = (64, 128, 256, 512), 64
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            self.add_module(f"layer{i + 1}", nn.Sequential(_BasicBlock(inplanes, w, stride), _BasicBlock(w, w)))
            inplanes = w
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.alpha = nn.Sequential(nn.Linear(512, 1), nn.Sigmoid())
        self.beta = nn.Sequential(nn.Linear(1024, 1), nn.Sigmoid())
        self.pred_fc1 = nn.Linear(512, num_classes)
        self.pred_fc2 = nn.Linear(1024, num_classes)

    def frame_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(T, 3, 224, 224) RGB [0, 1] -> features f (T, 512) and first-level attention alpha (T, 1)."""
        f = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        f = self.layer4(self.layer3(self.layer2(self.layer1(f))))
        f = self.avgpool(f).flatten(1)
        return f, self.alpha(f)  # dropout is the identity in eval mode

    def video_logits(self, f: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """EAT's eval-time second level for one video: (T, 512), (T, 1) -> (8,) logits.

        vm = sum(alpha f) / sum(alpha); v_i = [f_i, vm]; beta_i = beta(v_i);
        pooled = sum(alpha_i v_i) / sum(alpha_i beta_i)  (as evaluation_eat's val(); training weights by alpha beta
        in the numerator too); logits = pred_fc2(pooled).
        """
        vm = (f * alpha).sum(0, keepdim=True) / alpha.sum()
        v = torch.cat([f, vm.expand_as(f)], dim=1)
        beta = self.beta(v)
        pooled = (v * alpha).sum(0) / (alpha * beta).sum()
        return self.pred_fc2(pooled)

    def single_frame_logits(self, f: torch.Tensor) -> torch.Tensor:
        """Per-frame logits: each frame as a one-frame video (vm = f, so the input of pred_fc2 is [f, f])."""
        return self.pred_fc2(torch.cat([f, f], dim=1))


class EmotionFanClassifier:
    """:class:`EmotionClassifier` adapter around :class:`EmotionFAN` (EAT MEAD-8 label order)."""

    labels = EAT_FAN_LABELS
    label_map = EAT_FAN_TO_MEAD

    def __init__(self, model: EmotionFAN, device: str | torch.device = "cpu", batch_size: int = 32) -> None:
        self.model = model.eval().to(device)
        self.device = device
        self.batch_size = batch_size

    def _features(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected (T, H, W, 3) uint8 RGB face frames, got {frames.shape} {frames.dtype}")
        fs, als = [], []
        with torch.no_grad():
            for i in range(0, len(frames), self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(frames[i:i + self.batch_size])).permute(0, 3, 1, 2)
                x = x.to(self.device, torch.float32) / 255.0
                if x.shape[-2:] != (224, 224):
                    # EAT: transforms.Resize(224) on square PIL crops (bilinear with antialias)
                    x = nn.functional.interpolate(x, size=(224, 224), mode="bilinear", antialias=True,
                                                  align_corners=False)
                f, a = self.model.frame_features(x)
                fs.append(f)
                als.append(a)
        return torch.cat(fs), torch.cat(als)

    def frame_logits(self, frames: np.ndarray) -> np.ndarray:
        f, _ = self._features(frames)
        with torch.no_grad():
            return self.model.single_frame_logits(f).cpu().numpy()

    def video_logits(self, frames: np.ndarray) -> np.ndarray:
        f, a = self._features(frames)
        with torch.no_grad():
            return self.model.video_logits(f, a).cpu().numpy()


def write_random_weights(target: Path, seed: int) -> None:
    """Random Emotion-FAN checkpoint in EAT's format.

    ``{"epoch", "state_dict" ("module."-prefixed keys), "accuracy", "name"}``, as evaluation_eat's save_checkpoint.
    """
    from dicetalk_bench.fileutil import atomic_path

    torch.manual_seed(seed)
    model = EmotionFAN()
    randomise_batchnorm_statistics_(model, torch.Generator().manual_seed(seed))  # eval-mode outputs vary
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        torch.save({"epoch": 0, "state_dict": state, "accuracy": 0.0, "name": "random"}, tmp)


def load_emotion_fan(path: str | Path | None = None, *, allow_unverified: bool = False,
                     device: str | torch.device = "cpu") -> tuple[EmotionFanClassifier, dict]:
    """Emotion-FAN from EAT's checkpoint through the weights registry (strict; "module." stripped; an ``fc.*`` head
    left over from the FER+ initialisation is ignored as EAT's loader does). Returns (classifier, weights record)."""
    from dicetalk_bench import weights

    resolved = weights.resolve(WEIGHTS_KEY, path, allow_unverified=allow_unverified)
    raw = weights.load_state_dict(resolved)
    state = raw["state_dict"] if "state_dict" in raw else raw
    state = {k.removeprefix("module."): v for k, v in state.items() if k not in ("module.fc.weight", "module.fc.bias")}
    model = EmotionFAN()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise weights.WeightsError(f"{resolved.path}: not an Emotion-FAN resnet18_at checkpoint: {exc}") from exc
    return EmotionFanClassifier(model, device=device), resolved.record()

register_random_builder("emotion-fan", write_random_weights)
