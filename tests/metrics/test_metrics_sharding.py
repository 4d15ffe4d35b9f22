"""FVD feature extraction sharded over a local Dask cluster (2 workers x 1 thread) equals the serial run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dicetalk_bench import media, weights
from dicetalk_bench.errors import SetupError
from dicetalk_bench.metrics.fvd import FVDConfig, compute_fvd, whole_video_clip_features
from dicetalk_bench.metrics.i3d import load_i3d
from dicetalk_bench.metrics.registry import ScoreRequest
from dicetalk_bench.metrics.sharding import Sharding
from dicetalk_bench.metrics.video_set import list_videos


def _moving(seed: int, n: int) -> np.ndarray:
    base = np.random.default_rng(seed).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    return np.stack([np.roll(base, 3 * t, axis=0) for t in range(n)])


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sharded")
    for i, n in enumerate((12, 10)):
        media.write_video(root / "gen" / f"g{i}.mp4", _moving(i, n), fps=25)
        media.write_video(root / "ref" / f"r{i}.mp4", _moving(10 + i, n), fps=25)
    media.write_video(root / "gen" / "short.mp4", _moving(5, 4), fps=25)
    (root / "gen" / "broken.mp4").write_bytes(b"not a video")
    return root, weights.make_random("i3d-400", root / "w", seed=0)


@pytest.mark.slow
def test_sharded_fvd_equals_serial(sets):
    root, i3d = sets
    cfg = FVDConfig(clip_length=9, size=193)
    gen, ref = list_videos(root / "gen"), list_videos(root / "ref")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' thread count, so the serial reference runs the same kernels
    try:
        serial = compute_fvd(gen, ref, config=cfg, weights_path=i3d, allow_unverified=True, force_small_set=True)
        model, _ = load_i3d("i3d-400", i3d, allow_unverified=True)
        whole = whole_video_clip_features(model, "g0", root / "gen" / "g0.mp4", cfg)
    finally:
        torch.set_num_threads(threads)
    sharded = compute_fvd(gen, ref, config=cfg, weights_path=i3d, allow_unverified=True, force_small_set=True,
                          sharding=Sharding(workers=2))
    assert list(sharded.features) == list(serial.features) == ["g0", "g1"]
    for cid in serial.features:
        assert np.array_equal(sharded.features[cid], serial.features[cid]), cid
        assert np.array_equal(sharded.reference_features[f"r{cid[1]}"], serial.reference_features[f"r{cid[1]}"])
    assert np.array_equal(serial.features["g0"], whole)  # the bounded reader against the whole-video one
    assert sharded.value == serial.value and np.isfinite(serial.value)
    assert sharded.failures == serial.failures and sharded.failure_kinds == serial.failure_kinds
    assert set(serial.failures) == {"short", "broken"} and serial.failure_kinds["short"] == "too-short"


def test_sharding_options():
    assert not Sharding().enabled and Sharding(workers=2).enabled and Sharding(scheduler="tcp://x:1").enabled
    with pytest.raises(SetupError, match="--workers"):
        Sharding(workers=-1)
    assert ScoreRequest(videos=".", workers=3).sharding() == Sharding(3, None)
