"""LPIPS parity: our registry-loaded LPIPS-alex against the ``lpips`` package built its own way.

``lpips.LPIPS(net="alex", pretrained=True)`` asks torchvision for the ImageNet AlexNet and slices its ``features``
itself; here torchvision's constructor hands it the same random AlexNet that our registry file holds, so the two
paths share weights but not code (our key mapping and [-1, 1] scaling against lpips' own slicing and
``normalize=True``)."""

from __future__ import annotations

import warnings

import lpips
import numpy as np
import pytest
import torch
import torchvision

from dicetalk_bench import weights
from dicetalk_bench.metrics.pixel import load_lpips


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    return weights.make_random("lpips-alex", tmp_path_factory.mktemp("alex"), seed=0)


def test_lpips_equals_the_lpips_package(weights_file, monkeypatch):
    state = torch.load(weights_file, map_location="cpu", weights_only=True)
    build_alexnet = torchvision.models.alexnet

    def alexnet_with_our_weights(*_args, **_kwargs):
        model = build_alexnet(weights=None)
        model.load_state_dict(state)
        return model

    monkeypatch.setattr(lpips.pretrained_networks.tv, "alexnet", alexnet_with_our_weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        theirs = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=False, verbose=False).eval()
    ours, _ = load_lpips(weights_file, allow_unverified=True)

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 40, a.shape), 0, 255).astype(np.uint8)
    b[2] = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)  # one unrelated pair: a large distance

    def to_unit(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255

    with torch.no_grad():
        reference = theirs(to_unit(a), to_unit(b), normalize=True).flatten().double().numpy()
    mine = ours(a, b)
    assert mine.shape == reference.shape == (3,)
    assert reference[2] > reference[0] > 0
    np.testing.assert_allclose(mine, reference, rtol=1e-6, atol=0)
