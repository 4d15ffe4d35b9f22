"""FID / KID parity with the reference packages, on identical random weights and inputs.

- ``fid.mode=tf1`` against torch-fidelity 0.4.0: a fresh ``FeatureExtractorInceptionV3`` built by torch-fidelity from
  the same local weights file, its own preprocessing (captured at the input of its first convolution) and features;
- ``fid.mode=pytorch-fid`` against pytorch-fid 0.3.0's ``InceptionV3`` (its FID blocks; the download it would make is
  replaced by the same random state dict), its own preprocessing and features;
- the Fréchet distance against torch-fidelity's ``fid_statistics_to_metric`` and pytorch-fid's
  ``calculate_frechet_distance``; KID against torch-fidelity's ``kid_features_to_metric``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch_fidelity.metric_fid as tf_fid
import torch_fidelity.metric_kid as tf_kid
from pytorch_fid import fid_score as pf_score
from pytorch_fid import inception as pf_inception
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from dicetalk_bench import weights
from dicetalk_bench.metrics import inception
from dicetalk_bench.metrics.frechet import FeatureStats, frechet_distance_raw
from dicetalk_bench.metrics.kid import kernel_inception_distance


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    return weights.make_random("inception-fid", tmp_path_factory.mktemp("inception"), seed=0)


@pytest.fixture(scope="module")
def frames() -> torch.Tensor:
    """(2, 3, 45, 61) uint8: not 299, not square, so both resizes do work."""
    y, x = torch.meshgrid(torch.arange(45.0), torch.arange(61.0), indexing="ij")
    smooth = 128 + 90 * torch.sin(x / 6) * torch.cos(y / 5)
    noise = torch.randn(2, 3, 45, 61, generator=torch.Generator().manual_seed(0)) * 25
    return (smooth + noise).clamp(0, 255).round().to(torch.uint8)


def _first_conv_input(module: torch.nn.Module, run) -> tuple[torch.Tensor, object]:
    """Run ``run()`` and return (the input tensor of ``module``, run's output)."""
    seen = []
    handle = module.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
    try:
        out = run()
    finally:
        handle.remove()
    return seen[0], out


def test_tf1_mode_equals_torch_fidelity(weights_file, frames):
    ours, _ = inception.load_inception(weights_file, allow_unverified=True, resize_mode="tf1")
    theirs = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                         feature_extractor_weights_path=str(weights_file)).eval()
    with torch.inference_mode():
        their_input, (their_feats,) = _first_conv_input(theirs.Conv2d_1a_3x3, lambda: theirs(frames))
        our_input = ours.preprocess(frames)
        our_feats = ours(frames)
    assert our_input.shape == their_input.shape == (2, 3, 299, 299)
    torch.testing.assert_close(our_input, their_input, rtol=0, atol=0)
    assert our_feats.shape == their_feats.shape == (2, 2048)
    assert _rel(our_feats, their_feats) < 1e-6


def test_pytorch_fid_mode_equals_pytorch_fid(weights_file, frames, monkeypatch):
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    # pytorch-fid would download pt_inception-2015-12-05-6726825d.pth; hand it the same random state dict instead
    monkeypatch.setattr(pf_inception, "load_state_dict_from_url", lambda *a, **k: dict(state))
    theirs = pf_inception.InceptionV3([pf_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]], resize_input=True,
                                      normalize_input=True, use_fid_inception=True).eval()
    ours, _ = inception.load_inception(weights_file, allow_unverified=True, resize_mode="pytorch-fid")
    with torch.inference_mode():
        # pytorch-fid's own input convention: float [0, 1] (torchvision ToTensor of the uint8 image)
        their_input, their_out = _first_conv_input(theirs.blocks[0][0], lambda: theirs(frames.float() / 255))
        our_input = ours.preprocess(frames)
        our_feats = ours(frames)
    their_feats = their_out[0][:, :, 0, 0]
    assert our_input.shape == their_input.shape == (2, 3, 299, 299)
    torch.testing.assert_close(our_input, their_input, rtol=0, atol=1e-6)
    assert our_feats.shape == their_feats.shape == (2, 2048)
    assert _rel(our_feats, their_feats) < 1e-5


def _features(seed: int, n: int, d: int = 64) -> np.ndarray:
    """(n, d) float32, non-negative like pool3 features, with a non-diagonal covariance."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(0, 1, (d, d)) / np.sqrt(d)
    return np.abs(rng.normal(0.1 * seed, 1.0, (n, d)) @ mix).astype(np.float32)


def test_frechet_distance_equals_torch_fidelity_and_pytorch_fid():
    gen, ref = _features(1, 300), _features(2, 350)
    s_gen = tf_fid.fid_features_to_statistics(torch.from_numpy(gen))
    s_ref = tf_fid.fid_features_to_statistics(torch.from_numpy(ref))
    a, b = FeatureStats.from_features(gen), FeatureStats.from_features(ref)
    np.testing.assert_allclose(a.mean(), s_gen["mu"], rtol=1e-6)  # theirs: float32 mean
    np.testing.assert_allclose(a.cov(ddof=1), s_gen["sigma"], rtol=1e-5, atol=1e-7)
    ours = frechet_distance_raw(a.mean(), a.cov(ddof=1), b.mean(), b.cov(ddof=1))
    # both references get the same float64 moments, so the comparison isolates the distance itself
    stats = ({"mu": a.mean(), "sigma": a.cov(ddof=1)}, {"mu": b.mean(), "sigma": b.cov(ddof=1)})
    torch_fidelity_fid = tf_fid.fid_statistics_to_metric(*stats, verbose=False)[tf_fid.KEY_METRIC_FID]
    with warnings.catch_warnings():  # pytorch-fid calls scipy.linalg.sqrtm(..., disp=False), deprecated in scipy 1.16
        warnings.filterwarnings("ignore", message=".*disp.*", category=DeprecationWarning)
        pytorch_fid_fid = pf_score.calculate_frechet_distance(a.mean(), a.cov(ddof=1), b.mean(), b.cov(ddof=1))
    assert ours == pytest.approx(torch_fidelity_fid, rel=1e-9)
    assert ours == pytest.approx(float(pytorch_fid_fid), rel=1e-9)
    # and from torch-fidelity's own (float32-mean) statistics, end to end
    their_end_to_end = tf_fid.fid_statistics_to_metric(s_gen, s_ref, verbose=False)[tf_fid.KEY_METRIC_FID]
    assert ours == pytest.approx(their_end_to_end, rel=1e-6)


def test_kid_equals_torch_fidelity():
    # subsets as large as the sets: every subset is a permutation of the whole set, so the two packages' different
    # random generators draw the same value and the estimator itself is compared
    n = 200
    real, fake = _features(3, n), _features(4, n)
    ours = kernel_inception_distance(real, fake, n_subsets=3, subset_size=n, seed=0)

    def theirs(dtype: torch.dtype) -> dict:
        return tf_kid.kid_features_to_metric(torch.from_numpy(real).to(dtype), torch.from_numpy(fake).to(dtype),
                                             kid_subsets=3, kid_subset_size=n, kid_degree=3, kid_gamma=None,
                                             kid_coef0=1, kid_kernel="poly", rng_seed=0, verbose=False)

    # float64 features: the same estimator to round-off
    exact = theirs(torch.float64)
    assert ours.mean == pytest.approx(exact[tf_kid.KEY_METRIC_KID_MEAN], rel=1e-9)
    assert ours.std == pytest.approx(exact[tf_kid.KEY_METRIC_KID_STD], abs=1e-9 * abs(ours.mean))
    # torch-fidelity's own path keeps the float32 features in float32; we accumulate in float64
    assert ours.mean == pytest.approx(theirs(torch.float32)[tf_kid.KEY_METRIC_KID_MEAN], rel=2e-5)
