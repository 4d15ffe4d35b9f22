"""Windows per network call: the memory rule, the defaults, and batched sampling against one window per call."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dicetalk_bench.model.sampling import release_windows, unet_calls_per_step
from dicetalk_bench.model.window_batch import (CPU_WINDOW_BATCH, MEMORY_HEADROOM, resolve_window_batch,
                                               window_batch_for_memory)

GIB = 1 << 30


def test_window_batch_for_memory_is_the_floor_of_what_fits():
    assert window_batch_for_memory(10 * GIB, GIB, 100, headroom=1.0) == 10
    assert window_batch_for_memory(10 * GIB, GIB, 100) == int(MEMORY_HEADROOM * 10)
    assert window_batch_for_memory(10 * GIB - 1, GIB, 100, headroom=1.0) == 9
    assert window_batch_for_memory(10 * GIB, GIB, 4) == 4  # never more than the clip's windows
    assert window_batch_for_memory(GIB // 2, GIB, 4) == 1  # one window when even one does not fit: the unbatched run
    assert window_batch_for_memory(-5, GIB, 4) == 1
    with pytest.raises(ValueError, match="per-window memory"):
        window_batch_for_memory(GIB, 0, 4)


def test_resolve_window_batch_defaults_and_explicit_choices():
    never = lambda: pytest.fail("measured although the choice needs no measurement")  # noqa: E731
    assert resolve_window_batch(3, "cpu", 10, never) == 3
    assert resolve_window_batch(8, "cuda:0", 5, never, never) == 5  # capped at the clip's windows
    assert resolve_window_batch(None, "cpu", 10, never) == CPU_WINDOW_BATCH
    assert resolve_window_batch(None, "cpu", 2, never) == 2
    measured = []
    got = resolve_window_batch(None, "cuda:0", 40, lambda: measured.append(1) or 3 * GIB, lambda: 30 * GIB)
    assert got == int(MEMORY_HEADROOM * 30 / 3) and measured == [1]
    with pytest.raises(ValueError, match="window_batch must be >= 1"):
        resolve_window_batch(0, "cpu", 3)
    with pytest.raises(ValueError, match="at least one window"):
        resolve_window_batch(None, "cpu", 0)


# ------------------------------------------------------------------------------------------- through the network
N_FRAMES = 60  # native mode: 60 + 25 pad frames = 4 windows of 25 per step
STEPS = 2


@pytest.fixture(scope="module")
def random_model(svd_dir):
    from dicetalk_bench.model.config import TINY
    from dicetalk_bench.model.network import DiceTalkNetwork
    from dicetalk_bench.model.pipeline import LoadedModel
    from dicetalk_bench.model.svd import load_frozen_encoders

    torch.manual_seed(0)
    net = DiceTalkNetwork(TINY).eval()
    return LoadedModel(net, load_frozen_encoders(svd_dir), {}, {}, {"frame_stride": 1}, 32)


def _generate(model, window_batch):
    from dicetalk_bench.model.pipeline import SampleConfig, generate_frames

    states = np.random.default_rng(1).standard_normal((N_FRAMES, 2, 5, 384)).astype(np.float16)
    prior = np.random.default_rng(2).standard_normal((1, 256)).astype(np.float32)
    calls = []
    hook = model.net.register_forward_pre_hook(lambda m, args: calls.append(args[0].shape[0]))
    try:
        cfg = SampleConfig(steps=STEPS, frame_rate="native", window_batch=window_batch)
        frames = generate_frames(model, torch.zeros(3, 32, 32), states, prior, np.array([4, 4, 28, 28]), cfg, seed=3)
    finally:
        hook.remove()
    return frames, calls


def test_batched_windows_do_the_same_maths_exactly_in_float64(random_model):
    """In float64 the network's summation order leaves no trace: 2 and 3 windows per call give the very frames
    of one window per call (4 windows per step, so 3 per call leaves a last call of one)."""
    net = random_model.net
    net.double()
    try:
        one, _ = _generate(random_model, 1)
        for k in (2, 3):
            assert torch.equal(_generate(random_model, k)[0], one), k
    finally:
        net.float()


def test_batched_windows_equal_one_window_per_call_to_float_tolerance(random_model):
    """In float32 the network's kernels may sum in another order at another batch size: frames in [-1, 1] agree
    to 1e-3, an eighth of one uint8 level (measured: 2.5e-4 at 2 steps, 5e-5 at 4, the same as running one window
    per call on 2 threads instead of 1)."""
    one, calls_one = _generate(random_model, 1)
    assert len(release_windows(N_FRAMES + 25, 25, 0, 7)) == 4
    assert calls_one == [3] * STEPS * 4  # one window (three guidance branches) per call
    for k in (2, 3):
        frames, calls = _generate(random_model, k)
        torch.testing.assert_close(frames, one, rtol=0, atol=1e-3)
        assert len(calls) == STEPS * unet_calls_per_step(N_FRAMES, window_batch=k) < len(calls_one)
        assert calls == [3 * len(range(s, min(s + k, 4))) for _ in range(STEPS) for s in range(0, 4, k)]
