"""Window fusion as the DICE-Talk release runs it: starts, coverage, no wrap from the clip's end to its start,
and the null conditions of the pad frames in all three guidance branches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dicetalk_bench.model.sampling import (fuse_windows, karras_sigmas, release_window_starts, release_windows,
                                           shifted_window_denoiser, unet_calls_per_step)

WINDOW, SHIFT, PAD, STEPS = 25, 7, 25, 25


def _release_loop_transcription(n_real: int) -> tuple[list[list[int]], np.ndarray]:
    """The release's loop (pipeline_dicetalk.py, __call__), written out: per step, the window starts, and how
    often each frame is covered over all steps.

        shift = 0
        for each step:
            for index_start in range(0, N + 25, 25 - overlap):   # overlap 0
                index_start -= shift
                frames (index_start + i) % (N + 25), i < 25
            shift = (shift + 7) % 25
    """
    total = n_real + PAD
    shift, starts, counts = 0, [], np.zeros(total, int)
    for _ in range(STEPS):
        step_starts = []
        for index_start in range(0, total, WINDOW):
            index_start -= shift
            step_starts.append(index_start)
            for i in range(WINDOW):
                counts[(index_start + i) % total] += 1
        starts.append(step_starts)
        shift = (shift + SHIFT) % WINDOW
    return starts, counts


@pytest.mark.parametrize("n", [1, 24, 25, 50, 137])
def test_window_starts_and_coverage_equal_the_release_rule(n):
    expected_starts, expected_counts = _release_loop_transcription(n)
    total = n + PAD
    counts = np.zeros(total, int)
    for step in range(STEPS):
        assert release_window_starts(total, WINDOW, step, SHIFT) == expected_starts[step]
        windows = release_windows(total, WINDOW, step, SHIFT)
        assert len(windows) == math.ceil(total / WINDOW) == unet_calls_per_step(n, WINDOW, PAD)
        for idx in windows:
            np.add.at(counts, idx.numpy(), 1)
    np.testing.assert_array_equal(counts, expected_counts)
    assert counts.min() >= STEPS  # every frame, pad included, is denoised at every step


@pytest.mark.parametrize("n", [1, 24, 25, 50, 137])
def test_no_window_joins_the_last_real_frame_to_the_first(n):
    total = n + PAD
    for step in range(STEPS):
        for idx in release_windows(total, WINDOW, step, SHIFT):
            pairs = list(zip(idx[:-1].tolist(), idx[1:].tolist()))
            assert (n - 1, 0) not in pairs
            real = [f for f in idx.tolist() if f < n]
            # the real frames of a window are consecutive frames of the clip, in order
            assert real == list(range(real[0], real[0] + len(real))) if real else True


def test_the_denoiser_visits_the_release_windows_step_by_step():
    n, sigmas = 50, karras_sigmas(4)
    seen: list[tuple[float, list[int]]] = []

    def window_denoise(xw, sigma, idx):
        seen.append((float(sigma), idx[0].item()))
        return xw

    den = shifted_window_denoiser(window_denoise, sigmas, WINDOW, SHIFT)
    x = torch.randn(1, n + PAD, 2)
    for s in sigmas[:-1]:
        torch.testing.assert_close(den(x, s), x)  # identity windows average back to the input
    starts = [[i % (n + PAD) for i in release_window_starts(n + PAD, WINDOW, k, SHIFT)] for k in range(4)]
    assert [start for _, start in seen] == [s for step in starts for s in step]


def test_fusion_averages_frames_covered_twice():
    total = 30  # 2 windows of 25: frames 0..19 (after the shift) covered twice
    windows = release_windows(total, WINDOW, 0, SHIFT)
    calls = []
    fused = fuse_windows(lambda xw, idx: (calls.append(idx) or torch.full_like(xw, float(len(calls)))),
                         torch.zeros(1, total, 1), windows)
    expected = torch.zeros(total)
    count = torch.zeros(total)
    for k, idx in enumerate(calls, start=1):
        expected.index_add_(0, idx, torch.full((WINDOW,), float(k)))
        count.index_add_(0, idx, torch.ones(WINDOW))
    torch.testing.assert_close(fused[0, :, 0], expected / count)
    with pytest.raises(ValueError, match="at least 25 frames"):
        release_windows(10, WINDOW, 0, SHIFT)


# ------------------------------------------------------------------------------------- pad frames in the network
@pytest.fixture(scope="module")
def random_model(svd_dir):
    from dicetalk_bench.model.config import TINY
    from dicetalk_bench.model.network import DiceTalkNetwork
    from dicetalk_bench.model.pipeline import LoadedModel
    from dicetalk_bench.model.svd import load_frozen_encoders

    torch.manual_seed(0)
    net = DiceTalkNetwork(TINY).eval()
    return LoadedModel(net, load_frozen_encoders(svd_dir), {}, {}, {"frame_stride": 1}, 32)


@pytest.mark.parametrize("window_batch", [1, 2])
def test_pad_frames_carry_the_null_tokens_in_all_three_branches(random_model, window_batch):
    from dicetalk_bench.model.pipeline import SampleConfig, generate_frames

    net = random_model.net
    calls = []
    hooks = [net.audio_proj.register_forward_hook(lambda m, i, o: calls.append(("audio", i[0].clone(), o.clone()))),
             net.emo_model.register_forward_hook(lambda m, i, o: calls.append(("emotion", None, o.tokens.clone())))]
    frames_seen = []
    forward = net.forward

    def spy(*args, **kwargs):
        frames_seen.append((args[4].shape, kwargs["drop_conditions"].tolist()))
        return forward(*args, **kwargs)

    net.forward = spy
    try:
        n = 9
        states = np.random.default_rng(1).standard_normal((n, 2, 5, 384)).astype(np.float16)
        prior = np.random.default_rng(2).standard_normal((1, 256)).astype(np.float32)
        cfg = SampleConfig(steps=1, frame_rate="native", window_batch=window_batch)
        generate_frames(random_model, torch.zeros(3, 32, 32), states, prior, np.array([4, 4, 28, 28]), cfg)
    finally:
        net.forward = forward
        for h in hooks:
            h.remove()
    with torch.no_grad():
        null_audio = net.audio_proj(torch.zeros(1, 1, 10, 5, 384))[0, 0]
        null_emotion = net.emo_model(torch.zeros(1, 1, 256)).tokens[0, 0]
        real_emotion = net.emo_model(torch.from_numpy(prior)[None]).tokens[0, 0]
    windows = release_windows(n + PAD, WINDOW, 0, SHIFT)
    # window_batch windows per network call, each with its three guidance branches side by side
    assert len(windows) == 2 and len(frames_seen) == 2 // window_batch
    assert all(shape[0] == 3 * window_batch and drop == [True, True, False] * window_batch
               for shape, drop in frames_seen)
    # per window, its three rows (uncond, image-only, full) of the calls' outputs
    audio = [o[3 * k:3 * k + 3] for c, _, o in calls if c == "audio" for k in range(window_batch)]
    emotion = [o[3 * k:3 * k + 3] for c, _, o in calls if c == "emotion" for k in range(window_batch)]
    for idx, audio_tokens, emotion_tokens in zip(windows, audio, emotion, strict=True):
        pad = idx >= n
        assert pad.any() and (~pad).any()
        for branch in range(3):  # uncond, image-only, full
            torch.testing.assert_close(audio_tokens[branch, pad], null_audio.expand(int(pad.sum()), -1, -1))
            torch.testing.assert_close(emotion_tokens[branch, pad], null_emotion.expand(int(pad.sum()), -1, -1))
        # real frames: null conditions in the first two branches, the clip's in the full branch
        torch.testing.assert_close(emotion_tokens[0, ~pad], null_emotion.expand(int((~pad).sum()), -1, -1))
        torch.testing.assert_close(emotion_tokens[2, ~pad], real_emotion.expand(int((~pad).sum()), -1, -1))
        assert (audio_tokens[2, ~pad] - null_audio).abs().amax() > 1e-4
