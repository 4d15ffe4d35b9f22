"""Baseline rows built from real clips: static frames, a seeded derangement of audio, a 5-frame audio delay."""

from __future__ import annotations

import numpy as np
import pytest

from dicetalk_bench import media
from dicetalk_bench.baselines import (AUDIO_RATE, FPS, SHIFT_FRAMES, build_baseline, derangement, fit_audio,
                                      shift_audio, static_frames)
from dicetalk_bench.errors import SetupError


def _clip(path, seed, n_frames=20):
    rng = np.random.default_rng(seed)
    frames = np.zeros((n_frames, 48, 48, 3), np.uint8)
    for t in range(n_frames):  # a moving bright square over a per-clip colour
        frames[t] = rng.integers(40, 200, 3, dtype=np.uint8)
        frames[t, 10:26, 2 + t:18 + t] = 255
    n = int(round(n_frames / FPS * AUDIO_RATE))
    t = np.arange(n) / AUDIO_RATE
    audio = (0.2 * np.sin(2 * np.pi * (220 + 110 * seed) * t) + 0.1 * rng.standard_normal(n)).astype(np.float32)
    media.write_video(path, frames, FPS, audio=audio, audio_rate=AUDIO_RATE)
    return frames, audio


def test_pure_pieces():
    f = np.arange(3 * 2 * 2 * 3, dtype=np.uint8).reshape(3, 2, 2, 3)
    assert (static_frames(f) == f[0]).all() and static_frames(f).shape == f.shape
    a = np.arange(1, 11, dtype=np.float32)
    np.testing.assert_array_equal(fit_audio(a, 4), a[:4])
    np.testing.assert_array_equal(fit_audio(a, 12), np.r_[a, 0, 0])
    shifted = shift_audio(np.ones(AUDIO_RATE, np.float32))
    n = SHIFT_FRAMES * AUDIO_RATE // int(FPS)
    assert len(shifted) == AUDIO_RATE and not shifted[:n].any() and shifted[n:].all()
    for seed in range(20):
        d = derangement([f"c{i}" for i in range(7)], seed)
        assert sorted(d.values()) == sorted(d) and all(k != v for k, v in d.items())
    assert derangement(["a", "b", "c"], 3) == derangement(["c", "b", "a"], 3)
    with pytest.raises(ValueError, match="at least 2"):
        derangement(["a"], 0)


def test_build_baselines_from_videos(tmp_path):
    clips, truth = {}, {}
    for i in range(3):
        p = tmp_path / "real" / f"M003_happy_{i}.mp4"
        truth[f"M003_happy_{i}"] = _clip(p, i)
        clips[f"M003_happy_{i}"] = p
    folder, rec = build_baseline("static", clips, tmp_path / "static")
    assert rec["n_written"] == 3 and not rec["failures"]
    v = media.read_video(folder / "M003_happy_1.mp4")
    assert len(v.frames) == 20
    assert np.abs(v.frames.astype(int) - v.frames[:1].astype(int)).max() <= 3  # held still (codec noise only)

    folder, rec = build_baseline("shuffled-audio", clips, tmp_path / "shuffled", seed=1)
    for cid, src in rec["audio_from"].items():
        got = media.read_audio(folder / f"{cid}.mp4", AUDIO_RATE)
        n = min(len(got), len(truth[src][1]))
        corr = {other: np.corrcoef(got[:n], truth[other][1][:n])[0, 1] for other in truth}
        assert max(corr, key=corr.get) == src != cid

    folder, rec = build_baseline("shifted-audio", clips, tmp_path / "shifted")
    got = media.read_audio(folder / "M003_happy_0.mp4", AUDIO_RATE)
    ref = truth["M003_happy_0"][1]
    lags = range(0, 6000, 4)
    best = max(lags, key=lambda k: float(np.dot(got[k:k + 6000], ref[:6000])))
    assert abs(best - SHIFT_FRAMES * AUDIO_RATE / FPS) <= 80  # within 5 ms of the 200 ms delay

    # rerun reuses; other settings in the same folder are refused; an unreadable clip is recorded, not fatal
    _, again = build_baseline("shifted-audio", clips, tmp_path / "shifted")
    assert again["n_reused"] == 3 and again["n_written"] == 0
    with pytest.raises(SetupError, match="other settings"):
        build_baseline("static", clips, tmp_path / "shifted")
    bad = tmp_path / "real" / "broken.mp4"
    bad.write_bytes(b"not a video")
    _, rec = build_baseline("static", {**clips, "broken": bad}, tmp_path / "static2")
    assert rec["n_written"] == 3 and rec["failure_kinds"] == {"broken": "unreadable-video"}
