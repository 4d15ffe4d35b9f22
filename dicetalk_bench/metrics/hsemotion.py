"""HSEmotion AffectNet-8 EfficientNet-B0 (``enet_b0_8_best_afew.pt``) as an :class:`EmotionClassifier`.

Reference: HSE-asavchenko/face-emotion-recognition ``src/train_emotions-pytorch.ipynb`` (the notebook that trains and
``torch.save``s the whole model as ``models/affectnet_emotions/enet_b0_8_best_afew.pt``): timm
``tf_efficientnet_b0_ns`` (TF "same" padding, BN eps 1e-3) with ``model.classifier =
nn.Sequential(nn.Linear(1280, 8))``. The architecture is ``tf_efficientnet_b0`` in timm >= 0.9 (``_ns`` named the
Noisy-Student ImageNet weights, which HSEmotion replaced by its VGGFace2 pre-training anyway). Parameter names and
shapes: ``tests/data/hsemotion_enet_b0_8.tsv`` (derived from the model printed in that notebook).

Inference as the ``hsemotion`` package (``HSEmotionRecognizer``): RGB face crop -> ``Resize((224, 224))`` ->
``ToTensor`` -> ``Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])`` -> logits over
Anger, Contempt, Disgust, Fear, Happiness, Neutral, Sadness, Surprise (``idx_to_class``).

Weights: the official file is a whole pickled model; ``python -m dicetalk_bench.weights convert hsemotion-enet-b0-8
--trust-pickle enet_b0_8_best_afew.pt enet_b0_8_best_afew.safetensors`` re-saves its state dict once, and
:func:`load_hsemotion` loads that safetensors file (strict) through the weights registry.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from dicetalk_bench.metrics.emotion import HSEMOTION_8_LABELS, HSEMOTION_8_TO_MEAD
from dicetalk_bench.weights.random_weights import randomise_batchnorm_statistics_, register_random_builder

__all__ = ["WEIGHTS_KEY", "INPUT_SIZE", "IMAGENET_MEAN", "IMAGENET_STD", "build_enet_b0_8", "HSEmotionClassifier",
           "load_hsemotion", "write_random_weights"]

log = logging.getLogger(__name__)

WEIGHTS_KEY = "hsemotion-enet-b0-8"
INPUT_SIZE = 224  # hsemotion: img_size = 224 if '_b0_' in model_name else 260
# hsemotion test_transforms: torchvision Normalize with the ImageNet statistics
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_enet_b0_8() -> nn.Module:
    """timm ``tf_efficientnet_b0`` with HSEmotion's 8-class head ``classifier = Sequential(Linear(1280, 8))``."""
    from dicetalk_bench.extras import require

    timm = require("timm", "hsemotion")
    model = timm.create_model("tf_efficientnet_b0", pretrained=False)
    model.classifier = nn.Sequential(nn.Linear(model.num_features, len(HSEMOTION_8_LABELS)))
    return model


class HSEmotionClassifier:
    """:class:`~dicetalk_bench.metrics.emotion.EmotionClassifier` adapter (AffectNet-8 labels -> MEAD names)."""

    labels = HSEMOTION_8_LABELS
    label_map = HSEMOTION_8_TO_MEAD

    def __init__(self, model: nn.Module, device: str | torch.device = "cpu", batch_size: int = 32) -> None:
        self.model = model.eval().to(device)
        self.device = device
        self.batch_size = batch_size
        self._mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """(T, H, W, 3) uint8 RGB -> (T, 3, 224, 224) float32 normalised input."""
        x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).to(self.device, torch.float32) / 255
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            # hsemotion: PIL Resize((224, 224)), bilinear with antialiasing
            x = nn.functional.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", antialias=True,
                                          align_corners=False)
        return (x - self._mean) / self._std

    def frame_logits(self, frames: np.ndarray) -> np.ndarray:
        """(T, H, W, 3) uint8 RGB face crops -> (T, 8) logits in :data:`HSEMOTION_8_LABELS` order."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected (T, H, W, 3) uint8 RGB face frames, got {frames.shape} {frames.dtype}")
        out = []
        with torch.no_grad():
            for i in range(0, len(frames), self.batch_size):
                out.append(self.model(self.preprocess(frames[i:i + self.batch_size])).float().cpu())
        return torch.cat(out).numpy()


def write_random_weights(target: Path, seed: int) -> None:
    """Random weights in the official format: a whole pickled model (``torch.save(model)``), as the notebook saves.

    BatchNorm statistics are made non-trivial so eval-mode outputs vary. Load it after ``weights convert``.
    """
    from dicetalk_bench.fileutil import atomic_path

    torch.manual_seed(seed)
    model = build_enet_b0_8()
    randomise_batchnorm_statistics_(model, torch.Generator().manual_seed(seed))  # eval-mode outputs vary
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        torch.save(model.eval(), tmp)


def load_hsemotion(path: str | Path | None = None, *, allow_unverified: bool = False,
                   device: str | torch.device = "cpu") -> tuple[HSEmotionClassifier, dict]:
    """HSEmotion EfficientNet-B0 AffectNet-8 through the weights registry (the converted safetensors state dict,
    loaded strictly). The pickled original is refused with the convert command to run. Returns (classifier, record).
    """
    from dicetalk_bench import weights

    resolved = weights.resolve(WEIGHTS_KEY, path, allow_unverified=allow_unverified)
    state = weights.load_state_dict(resolved)
    model = build_enet_b0_8()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise weights.WeightsError(f"{resolved.path}: not an HSEmotion enet_b0_8 state dict: {exc}") from exc
    return HSEmotionClassifier(model, device=device), resolved.record()

register_random_builder("hsemotion-enet-b0-8", write_random_weights)
