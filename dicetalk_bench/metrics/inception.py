"""The FID InceptionV3 (TF inception-2015-12-05 port) as torch-fidelity 0.4.0 builds it, always from a local file.

The network is torch-fidelity's ``FeatureExtractorInceptionV3('inception-v3-compat', ['2048'])``,
constructed with ``feature_extractor_weights_path`` set to the file that :func:`dicetalk_bench.weights.resolve`
found for ``inception-fid`` (hash-checked), so nothing is ever downloaded. Its parameter names equal those of
``pt_inception-2015-12-05-6726825d.pth`` (reference list: tests/data/inception_torch_fidelity.tsv).

Two preprocessing modes feed the same network (record the mode with every score):

- ``tf1`` (default): torch-fidelity's own path -- uint8 -> TF1-exact bilinear resize to 299 -> (x - 128) / 128;
  this matches the original TF FID graph.
- ``pytorch-fid``: pytorch-fid 0.3.0's path -- [0, 1] floats -> ``F.interpolate(bilinear, align_corners=False)``
  to 299 -> 2x - 1 (Wav2Lip, Hallo2 and EAT tables used pytorch-fid).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dicetalk_bench.weights.random_weights import randomise_conv_bn_, register_random_builder

logger = logging.getLogger(__name__)

WEIGHTS_KEY = "inception-fid"
FEATURE_DIM = 2048
INPUT_SIZE = 299  # torch-fidelity FeatureExtractorInceptionV3.INPUT_IMAGE_SIZE
ResizeMode = Literal["tf1", "pytorch-fid"]
RESIZE_MODES: tuple[str, ...] = ("tf1", "pytorch-fid")

# torch-fidelity 0.4.0 FeatureExtractorInceptionV3.forward, up to the 2048-d pool (same order as its forward)
_TRUNK = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
          "MaxPool_2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
          "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool")


def _build_unloaded() -> nn.Module:
    """torch-fidelity's module with its (mandatory) state-dict load skipped: random init, for writing random files."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class _NoLoad(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):  # noqa: ARG002 - skip the forced load
            return None

    # a path is given so the constructor never reaches load_state_dict_from_url; torch.load of {} is harmless
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        return _NoLoad("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(empty))


def write_random_weights(target: Path, seed: int) -> None:
    """Random weights in the format of ``pt_inception-2015-12-05-6726825d.pth``: a plain state dict (torch.save)
    with exactly the parameter and buffer names/shapes of the FID InceptionV3. BatchNorm running statistics are
    randomised too (mean ~ N(0, 0.1), var ~ U(0.5, 1.5)) so that they matter in tests."""
    from dicetalk_bench.fileutil import atomic_path

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _build_unloaded()
        randomise_conv_bn_(model)
        state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    target = Path(target)
    with atomic_path(target, suffix=".pth") as tmp:
        torch.save(state, tmp)


class InceptionFeatures(nn.Module):
    """uint8 frames (B, 3, H, W) -> (B, 2048) float32 pool3 features of the FID InceptionV3.

    Wraps torch-fidelity's module (``self.net``) and applies the preprocessing of ``resize_mode``.
    ``internal_dtype`` float64 follows torch-fidelity's ``feature_extractor_internal_dtype`` option.
    """

    def __init__(self, net: nn.Module, resize_mode: ResizeMode = "tf1") -> None:
        super().__init__()
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize_mode {resize_mode!r}: expected one of {RESIZE_MODES}")
        self.net = net
        self.resize_mode = resize_mode

    @property
    def dtype(self) -> torch.dtype:
        return self.net.feature_extractor_internal_dtype

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) uint8 -> (B, 3, 299, 299) network input in the internal dtype."""
        if not torch.is_tensor(frames) or frames.dtype != torch.uint8:
            raise TypeError(f"InceptionFeatures expects a uint8 tensor (B, 3, H, W), got "
                            f"{getattr(frames, 'dtype', type(frames).__name__)}")
        if frames.dim() != 4 or frames.shape[1] != 3:
            raise ValueError(f"InceptionFeatures expects (B, 3, H, W) uint8, got shape {tuple(frames.shape)}")
        x = frames.to(self.dtype)
        if self.resize_mode == "tf1":
            from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

            x = interpolate_bilinear_2d_like_tensorflow1x(x, size=(INPUT_SIZE, INPUT_SIZE), align_corners=False)
            return (x - 128) / 128  # torch-fidelity: bit-exact with the graph's (x - 128) * 0.0078125
        # pytorch-fid: ToTensor -> [0, 1], bilinear resize (no antialias), then 2x - 1
        x = F.interpolate(x / 255.0, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2 * x - 1

    @torch.inference_mode()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(frames)
        for name in _TRUNK:
            x = getattr(self.net, name)(x)
        return torch.flatten(x, 1).to(torch.float32)


def load_inception(weights_path: str | Path | None = None, *, allow_unverified: bool = False,
                   resize_mode: ResizeMode = "tf1", device: str = "cpu",
                   internal_dtype: Literal["float32", "float64"] = "float32") -> tuple[InceptionFeatures, dict]:
    """Resolve ``inception-fid`` through the weights registry and build the extractor.

    Returns ``(extractor, record)`` where ``record`` is :meth:`ResolvedWeights.record` (file, sha256, calibrated).
    The file is first loaded with ``weights_only=True`` (refusing pickled code) and checked for strict key
    equality, then handed to torch-fidelity's constructor by path.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    from dicetalk_bench import weights

    resolved = weights.resolve(WEIGHTS_KEY, weights_path, allow_unverified=allow_unverified)
    state = weights.load_state_dict(resolved)  # safe load first: torch-fidelity itself uses weights_only=False
    _check_keys(state, resolved.path)
    net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                      feature_extractor_weights_path=str(resolved.path),
                                      feature_extractor_internal_dtype=internal_dtype)
    model = InceptionFeatures(net, resize_mode).to(device).eval()
    record = resolved.record() | {"network": "torch-fidelity FeatureExtractorInceptionV3 (inception-v3-compat)",
                                  "resize_mode": resize_mode, "internal_dtype": internal_dtype}
    return model, record


@functools.lru_cache(maxsize=1)
def expected_shapes() -> dict[str, tuple[int, ...]]:
    """Parameter/buffer name -> shape of the FID InceptionV3 (566 entries), from torch-fidelity's module."""
    return {k: tuple(v.shape) for k, v in _build_unloaded().state_dict().items()}


def _check_keys(state: Mapping[str, torch.Tensor], path: Path) -> None:
    expected = expected_shapes()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path}: not an FID InceptionV3 state dict ({len(missing)} missing keys, e.g. "
                         f"{missing[:3]}; {len(unexpected)} unexpected, e.g. {unexpected[:3]})")
    for k, v in expected.items():
        if tuple(state[k].shape) != v:
            raise ValueError(f"{path}: {k} has shape {tuple(state[k].shape)}, expected {v}")


def extract_features(model: InceptionFeatures, frames: np.ndarray, batch_size: int = 32,
                     device: str = "cpu") -> np.ndarray:
    """(N, H, W, 3) uint8 RGB frames -> (N, 2048) float32 features, in batches of ``batch_size``."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"extract_features: expected (N, H, W, 3) uint8 frames, got {frames.shape} "
                         f"{frames.dtype}")
    out = np.empty((len(frames), FEATURE_DIM), dtype=np.float32)
    for start in range(0, len(frames), batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(frames[start:start + batch_size])).permute(0, 3, 1, 2)
        out[start:start + len(chunk)] = model(chunk.to(device)).cpu().numpy()
    return out

register_random_builder("inception-fid", write_random_weights)
