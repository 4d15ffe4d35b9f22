"""FVD parity: our I3D and preprocessing against cd-fvd 0.1.1 (BatchNorm eps 1e-5) and against a layer-by-layer I3D
written here from the piergiaj/pytorch-i3d architecture with eps 1e-3 (the TF model's value); our Fréchet distance
against cd-fvd's two distance functions. Same random weights (``i3d_pretrained_400.pt`` format) everywhere; nothing
is downloaded (cd-fvd's loader is given the local file)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cdfvd.third_party.i3d import pytorch_i3d as cdfvd_i3d
from cdfvd.third_party.i3d import utils as cdfvd_utils
from cdfvd.utils.metric_utils import FeatureStats as CdfvdStats

from dicetalk_bench import weights
from dicetalk_bench.metrics import i3d
from dicetalk_bench.metrics.frechet import FeatureStats, frechet_distance_raw
from dicetalk_bench.metrics.fvd import FVDConfig, preprocess_clips

SIZE = i3d.MIN_SIZE  # cd-fvd's preprocess_i3d takes the target resolution; 193 keeps the CPU forward cheap
FRAMES = i3d.MIN_FRAMES


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b|."""
    return float((a - b).abs().max() / b.abs().max())


# --- layer-by-layer I3D over a state dict (piergiaj/pytorch-i3d InceptionI3d(400) architecture) ---------------------

def _same_pad(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    """TF 'SAME' zero padding computed from the input size, larger half at the back."""
    pads = []
    for size, k, s in zip(x.shape[2:], kernel, stride):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads.append((total // 2, total - total // 2))
    (tf, tb), (hf, hb), (wf, wb) = pads
    return F.pad(x, (wf, wb, hf, hb, tf, tb))


def _unit(x: torch.Tensor, sd: dict, name: str, eps: float, stride=(1, 1, 1)) -> torch.Tensor:
    """SAME-padded conv3d without bias, eval-mode batch norm with ``eps``, ReLU."""
    w = sd[f"{name}.conv3d.weight"]
    x = F.conv3d(_same_pad(x, tuple(w.shape[2:]), stride), w, None, stride)
    x = F.batch_norm(x, sd[f"{name}.bn.running_mean"], sd[f"{name}.bn.running_var"], sd[f"{name}.bn.weight"],
                     sd[f"{name}.bn.bias"], training=False, eps=eps)
    return F.relu(x)


def _max_pool(x: torch.Tensor, kernel, stride) -> torch.Tensor:
    return F.max_pool3d(_same_pad(x, kernel, stride), kernel, stride)


def _mixed(x: torch.Tensor, sd: dict, name: str, eps: float) -> torch.Tensor:
    b0 = _unit(x, sd, f"{name}.b0", eps)
    b1 = _unit(_unit(x, sd, f"{name}.b1a", eps), sd, f"{name}.b1b", eps)
    b2 = _unit(_unit(x, sd, f"{name}.b2a", eps), sd, f"{name}.b2b", eps)
    b3 = _unit(_max_pool(x, (3, 3, 3), (1, 1, 1)), sd, f"{name}.b3b", eps)
    return torch.cat([b0, b1, b2, b3], dim=1)


def reference_i3d(x: torch.Tensor, sd: dict, eps: float) -> torch.Tensor:
    """(B, 3, T, H, W) in [-1, 1] -> (B, 400) logits averaged over time."""
    x = _unit(x, sd, "Conv3d_1a_7x7", eps, stride=(2, 2, 2))
    x = _max_pool(x, (1, 3, 3), (1, 2, 2))
    x = _unit(x, sd, "Conv3d_2b_1x1", eps)
    x = _unit(x, sd, "Conv3d_2c_3x3", eps)
    x = _max_pool(x, (1, 3, 3), (1, 2, 2))
    x = _mixed(x, sd, "Mixed_3b", eps)
    x = _mixed(x, sd, "Mixed_3c", eps)
    x = _max_pool(x, (3, 3, 3), (2, 2, 2))
    for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
        x = _mixed(x, sd, name, eps)
    x = _max_pool(x, (2, 2, 2), (2, 2, 2))
    x = _mixed(x, sd, "Mixed_5b", eps)
    x = _mixed(x, sd, "Mixed_5c", eps)
    x = F.avg_pool3d(x, (2, 7, 7), (1, 1, 1))
    x = F.conv3d(x, sd["logits.conv3d.weight"], sd["logits.conv3d.bias"])  # (B, 400, T', 1, 1)
    return x[:, :, :, 0, 0].mean(dim=2)


# --- fixtures: one random weights file, one non-square uint8 clip ---------------------------------------------------

@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    return weights.make_random("i3d-400", tmp_path_factory.mktemp("i3d"), seed=0)


@pytest.fixture(scope="module")
def state(weights_file) -> dict:
    return torch.load(weights_file, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """(1, 9, 120, 150, 3) uint8: smooth moving content plus noise, not square (the resize matters)."""
    rng = np.random.default_rng(0)
    t, y, x = np.meshgrid(np.arange(FRAMES), np.arange(120), np.arange(150), indexing="ij")
    base = 127 + 80 * np.sin(x / 11.0 + t / 3.0)[..., None] * np.cos(y / 7.0)[..., None] * np.array([1.0, 0.6, -0.8])
    return np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)[None]


@pytest.fixture(scope="module")
def ours_eps5(weights_file, clip):
    """Our preprocessing (cd-fvd's: bilinear squash) and our I3D at eps 1e-5: (input, features)."""
    config = FVDConfig(resize="bilinear", frame_geometry="squash", size=SIZE, clip_length=FRAMES, i3d_bn_eps=1e-5)
    model, _ = i3d.load_i3d("i3d-400", weights_file, allow_unverified=True, bn_eps=1e-5)
    x = preprocess_clips(clip, config)
    with torch.inference_mode():
        return x, model(x)


def test_preprocessing_equals_cd_fvd(clip, ours_eps5):
    x, _ = ours_eps5
    theirs = cdfvd_utils.preprocess_i3d(clip, target_resolution=(SIZE, SIZE))
    assert theirs.shape == x.shape == (1, 3, FRAMES, SIZE, SIZE)
    torch.testing.assert_close(x, theirs, rtol=0, atol=1e-6)


def test_i3d_equals_cd_fvd_at_eps_1e5(state, ours_eps5):
    x, ours = ours_eps5
    model = cdfvd_i3d.InceptionI3d(400, in_channels=3)
    model.load_state_dict(state)  # strict: our random file has exactly cd-fvd's parameter names
    model.eval()
    assert all(m.eps == 1e-5 for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d))
    with torch.inference_mode():
        theirs = model(x)
    assert ours.shape == theirs.shape == (1, 400)
    assert _rel(ours, theirs) < 1e-5


def test_i3d_equals_layer_by_layer_reference_at_eps_1e3(weights_file, state, ours_eps5):
    x, ours_5 = ours_eps5
    model, _ = i3d.load_i3d("i3d-400", weights_file, allow_unverified=True, bn_eps=1e-3)
    with torch.inference_mode():
        ours_3 = model(x)
        ref_3 = reference_i3d(x, state, eps=1e-3)
    assert _rel(ours_3, ref_3) < 1e-5
    # the epsilon is a real protocol choice: the two features differ far beyond float round-off
    assert _rel(ours_5, ours_3) > 1e-4


def _gaussian_features(seed: int, n: int, d: int = 400) -> np.ndarray:
    """(n, d) float32 features with a non-diagonal covariance (a random mixing matrix), like I3D logits in scale."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(0, 1, (d, d)) / math.sqrt(d)
    return (rng.normal(0.05 * seed, 1.0, (n, d)) @ mix * 3.0).astype(np.float32)


def test_frechet_distance_equals_cd_fvd():
    """cd-fvd's two FVD distances on the same 400-d features: the scipy-sqrtm one of ``cdfvd.compute_fvd_from_stats``
    (covariance ddof 0, StyleGAN-V's FeatureStats) and the TF-GAN SVD one of its I3D utils (ddof 1, torch)."""
    import cdfvd.fvd

    gen, ref = _gaussian_features(1, 600), _gaussian_features(2, 700)
    s_gen, s_ref = CdfvdStats(capture_mean_cov=True), CdfvdStats(capture_mean_cov=True)
    s_gen.append(gen)
    s_ref.append(ref)
    with warnings.catch_warnings():  # cd-fvd calls scipy.linalg.sqrtm(..., disp=False), deprecated in scipy 1.16
        warnings.filterwarnings("ignore", message=".*disp.*", category=DeprecationWarning)
        theirs_ddof0 = float(cdfvd.fvd.cdfvd.compute_fvd_from_stats(None, s_gen, s_ref))
    a, b = FeatureStats.from_features(gen), FeatureStats.from_features(ref)
    ours_ddof0 = frechet_distance_raw(a.mean(), a.cov(ddof=0), b.mean(), b.cov(ddof=0))
    assert ours_ddof0 == pytest.approx(theirs_ddof0, rel=1e-9)
    theirs_ddof1 = float(cdfvd_utils.frechet_distance(torch.from_numpy(gen).double(), torch.from_numpy(ref).double()))
    ours_ddof1 = frechet_distance_raw(a.mean(), a.cov(ddof=1), b.mean(), b.cov(ddof=1))
    assert ours_ddof1 == pytest.approx(theirs_ddof1, rel=1e-9)
    assert abs(ours_ddof1 - ours_ddof0) > 1e-3 * ours_ddof1  # ddof is visible at this N: we use 1 (docs/metrics.md)
