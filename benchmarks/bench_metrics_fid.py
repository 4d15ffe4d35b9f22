"""FID feature throughput: our extractor path (``inception.extract_features``: numpy uint8 frames -> batches ->
TF1 resize -> InceptionV3 pool3) against torch-fidelity's own forward (the baseline) with the same random weights
on the same frames, measured in the same run. Reports frames/s of both and ``ratio_ours_over_torch_fidelity``
(time ratio; 1.0 means no overhead) in ``extra_info``, and checks the features agree.

Run: ``python -m pytest benchmarks/bench_metrics_fid.py --benchmark-only``
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from dicetalk_bench import weights
from dicetalk_bench.metrics import inception

logger = logging.getLogger(__name__)
N_FRAMES, H, W, BATCH = 32, 256, 256, 16
_RESULTS: dict[str, float] = {}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = weights.make_random("inception-fid", tmp_path_factory.mktemp("w"), seed=0)
    model, _ = inception.load_inception(path, allow_unverified=True)
    frames = np.random.default_rng(0).integers(0, 256, (N_FRAMES, H, W, 3), dtype=np.uint8)
    return model, frames


def _torch_fidelity(model, frames):
    out = []
    with torch.inference_mode():
        for s in range(0, len(frames), BATCH):
            x = torch.from_numpy(frames[s:s + BATCH]).permute(0, 3, 1, 2).contiguous()
            out.append(model.net(x)[0].numpy())
    return np.concatenate(out)


def test_fid_features_torch_fidelity_baseline(benchmark, setup):
    model, frames = setup
    feats = benchmark.pedantic(_torch_fidelity, args=(model, frames), rounds=2, iterations=1)
    _RESULTS["baseline_s"] = benchmark.stats.stats.mean
    _RESULTS["baseline_feats"] = feats
    benchmark.extra_info["frames_per_s"] = N_FRAMES / benchmark.stats.stats.mean


def test_fid_features_ours(benchmark, setup):
    model, frames = setup
    feats = benchmark.pedantic(inception.extract_features, args=(model, frames, BATCH), rounds=2, iterations=1)
    ours_s = benchmark.stats.stats.mean
    benchmark.extra_info["frames_per_s"] = N_FRAMES / ours_s
    if "baseline_s" in _RESULTS:
        ratio = ours_s / _RESULTS["baseline_s"]
        benchmark.extra_info["ratio_ours_over_torch_fidelity"] = ratio
        logger.warning("FID features: ours %.1f frames/s, torch-fidelity %.1f frames/s, time ratio %.3f",
                       N_FRAMES / ours_s, N_FRAMES / _RESULTS["baseline_s"], ratio)
        np.testing.assert_allclose(feats, _RESULTS["baseline_feats"], rtol=1e-4, atol=1e-5)
