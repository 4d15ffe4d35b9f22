"""Sync-C / Sync-D maths: pdist vs the original loop, offset recovery on a synthetic clip with a hand-made embedder,
the real SyncNet (random weights) end to end, fast == parity, aggregation."""

import numpy as np
import pytest
import torch

from dicetalk_bench import weights
from dicetalk_bench.metrics.mfcc import mfcc
from dicetalk_bench.metrics.sync import (SyncScores, aggregate_sync, calc_pdist_loop, count_windows,
                                         jpeg_round_trip, score_tracked_video, scores_from_distances,
                                         shift_distance_matrix, sync_scores_fast, sync_scores_original,
                                         sync_scores_parity)
from dicetalk_bench.metrics.syncnet import load_syncnet

MOUTH_ROWS, MOUTH_COLS, MOUTH_H = (150, 200), (80, 144), 50


def _znorm(x: torch.Tensor) -> torch.Tensor:
    x = x - x.mean(dim=1, keepdim=True)
    return x / (x.std(dim=1, keepdim=True) + 1e-6)


class HandEmbedder:
    """No training: the video side sees the mouth darkness of 5 frames, the audio side the loudness of 5 frames."""

    def forward_lip(self, w: torch.Tensor) -> torch.Tensor:  # (N, 3, 5, 224, 224) BGR
        r, c = MOUTH_ROWS, MOUTH_COLS
        return _znorm(-w[:, :, :, r[0]:r[1], c[0]:c[1]].mean(dim=(1, 3, 4)))

    def forward_aud(self, w: torch.Tensor) -> torch.Tensor:  # (N, 1, 13, 20) MFCC
        c0 = w[:, 0, 0, :].reshape(len(w), 5, 4).mean(-1)  # c0 = log energy, 4 MFCC frames per video frame
        return _znorm(torch.exp(c0 / 2))

    def lip_clip_embeddings(self, clip: torch.Tensor) -> torch.Tensor:
        return self.forward_lip(torch.cat([clip[:, :, t:t + 5] for t in range(clip.shape[2] - 4)], 0))


def synthetic_clip(n_frames: int, seed: int):
    """25 fps 224^2 BGR frames whose dark mouth height follows a random walk; 16 kHz int16 audio whose 300 Hz
    amplitude follows the same walk (one 640-sample segment per frame)."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(0, 1.0, n_frames))
    # rescaled into [0.05, 1] rather than clipped, so no stretch of the clip is constant
    opening = 0.05 + 0.95 * (walk - walk.min()) / max(np.ptp(walk), 1e-9)
    frames = np.full((n_frames, 224, 224, 3), 180, np.uint8)
    for t, o in enumerate(opening):
        h = o * MOUTH_H
        full = int(h)
        r0 = MOUTH_ROWS[0]
        frames[t, r0:r0 + full, MOUTH_COLS[0]:MOUTH_COLS[1]] = 40
        frac = h - full  # the partial row keeps the mean intensity linear in the opening
        frames[t, r0 + full, MOUTH_COLS[0]:MOUTH_COLS[1]] = np.uint8(round(180 - 140 * frac))
    n = np.arange(n_frames * 640)
    audio = 10000 * np.repeat(opening, 640) * np.sin(2 * np.pi * 300 * n / 16000) + rng.normal(0, 10, n.size)
    return frames, audio.astype(np.int16)


def delay(audio: np.ndarray, k: int) -> np.ndarray:
    """Audio delayed by k frames (k < 0: advanced)."""
    if k >= 0:
        return np.concatenate([np.zeros(640 * k, np.int16), audio])
    return audio[640 * -k:]


def test_vectorised_distances_equal_the_original_loop():
    gen = torch.Generator().manual_seed(0)
    v, a = torch.randn((40, 16), generator=gen), torch.randn((40, 16), generator=gen)
    np.testing.assert_allclose(shift_distance_matrix(v, a, 15).numpy(), calc_pdist_loop(v, a, 15).numpy(),
                               rtol=1e-6, atol=1e-6)
    # 1024-d embeddings: rows are processed in blocks of 264; the blocks must join seamlessly
    v, a = torch.randn((600, 1024), generator=gen), torch.randn((600, 1024), generator=gen)
    np.testing.assert_allclose(shift_distance_matrix(v, a, 15).numpy(), calc_pdist_loop(v, a, 15).numpy(),
                               rtol=1e-6, atol=1e-5)
    with pytest.raises(ValueError, match="differ in shape"):
        shift_distance_matrix(v, a[:-1])


@pytest.mark.parametrize("k", [-5, -2, 0, 3, 5])
def test_offset_of_shifted_embeddings(k):
    # a_i = v_{i-k}: the audio is delayed by k -> offset -k and min distance = pairwise_distance's eps on matches
    gen = torch.Generator().manual_seed(1)
    v = torch.nn.functional.normalize(torch.randn((80, 16), generator=gen), dim=1)
    a = torch.roll(v, k, 0)
    s = scores_from_distances(shift_distance_matrix(v, a, 15), 15)
    assert s.offset_frames == -k
    assert s.confidence > 0.5 and s.n_windows == 80 and len(s.mean_dists) == 31
    shuffled = scores_from_distances(shift_distance_matrix(v, a[torch.randperm(80, generator=gen)], 15), 15)
    assert shuffled.confidence < 0.2 * s.confidence


def test_scores_closed_form():
    d = torch.tensor([[3.0, 1.0, 2.0], [5.0, 1.0, 4.0]])  # mean [4, 1, 3]: min 1 at index 1, median 3
    s = scores_from_distances(d, vshift=1)
    assert (s.offset_frames, s.min_dist, s.confidence) == (0, 1.0, 2.0)


def test_window_count_is_the_originals():
    assert count_windows(100, 100 * 640) == 95
    assert count_windows(100, 50 * 640 + 639) == 45
    frames, audio = synthetic_clip(6, 0)
    assert sync_scores_parity(HandEmbedder(), frames, audio).n_windows == 1
    with pytest.raises(ValueError, match="too short"):
        sync_scores_parity(HandEmbedder(), frames[:5], audio)


@pytest.mark.parametrize("k", [0, 3, -3, 7, -7])
def test_offset_recovery_on_a_synthetic_clip(k):
    frames, audio = synthetic_clip(150, seed=2)
    emb = HandEmbedder()
    s = sync_scores_parity(emb, frames, delay(audio, k))
    assert s.offset_frames == -k
    fast = sync_scores_fast(emb, frames, delay(audio, k), chunk_frames=16)
    assert fast.offset_frames == -k
    np.testing.assert_allclose(fast.mean_dists, s.mean_dists, rtol=1e-5, atol=1e-5)
    # the audio of another sequence gives a lower confidence and a larger distance
    _, other = synthetic_clip(150, seed=99)
    wrong = sync_scores_parity(emb, frames, other)
    assert wrong.confidence < s.confidence and wrong.min_dist > s.min_dist


def test_mfcc_windows_follow_4v_to_4v_plus_20():
    # the audio side of window v must see MFCC frames 4v .. 4v+19: check through an embedder that returns them
    frames, audio = synthetic_clip(12, 3)
    seen = []

    class Probe(HandEmbedder):
        def forward_aud(self, w):
            seen.append(w.clone())
            return super().forward_aud(w)

    sync_scores_parity(Probe(), frames, audio)
    ref = mfcc(audio).T.astype(np.float32)
    got = torch.cat(seen, 0)
    assert got.shape == (7, 1, 13, 20)
    for v in range(7):
        np.testing.assert_array_equal(got[v, 0].numpy(), ref[:, 4 * v:4 * v + 20])


@pytest.fixture(scope="module")
def random_syncnet(tmp_path_factory):
    path = weights.make_random("syncnet", tmp_path_factory.mktemp("syncnet"), seed=0)
    model, record = load_syncnet(path, allow_unverified=True)
    return model


def test_real_syncnet_end_to_end_fast_equals_parity(random_syncnet):
    # full frames with a face box: crop -> 224 -> SyncNet; 16 frames -> 11 windows
    frames224, audio = synthetic_clip(16, seed=4)
    frames = np.full((16, 300, 260, 3), 90, np.uint8)
    frames[:, 40:264, 20:244] = frames224[..., ::-1]  # RGB full frames (the clip is grey, channel order moot)
    boxes = np.tile(np.array([60, 60, 200, 190], np.float32), (16, 1))
    parity = score_tracked_video(random_syncnet, frames, audio, boxes, mode="parity")
    fast = score_tracked_video(random_syncnet, frames, audio, boxes, mode="fast")
    assert parity.n_windows == fast.n_windows == 11
    assert np.isfinite(parity.min_dist) and np.isfinite(parity.confidence) and -15 <= parity.offset_frames <= 15
    scale = max(abs(x) for x in parity.mean_dists)
    np.testing.assert_allclose(fast.mean_dists, parity.mean_dists, rtol=1e-5, atol=1e-5 * scale)
    assert fast.offset_frames == parity.offset_frames
    with pytest.raises(ValueError, match="unknown sync mode"):
        score_tracked_video(random_syncnet, frames, audio, boxes, mode="bogus")


def test_fast_is_independent_of_chunk_size_and_original_mode_runs(random_syncnet):
    frames, audio = synthetic_clip(12, seed=5)
    bgr = frames[..., ::-1].copy()
    a = sync_scores_fast(random_syncnet, bgr, audio, chunk_frames=5)   # 1 window per chunk
    b = sync_scores_fast(random_syncnet, bgr, audio, chunk_frames=64)  # one chunk
    scale = max(abs(x) for x in a.mean_dists)
    np.testing.assert_allclose(a.mean_dists, b.mean_dists, rtol=1e-5, atol=1e-5 * scale)
    orig = sync_scores_original(random_syncnet, bgr, audio, jpeg_quality=90)
    assert orig.n_windows == a.n_windows and np.isfinite(orig.confidence)
    with pytest.raises(ValueError, match="chunk_frames"):
        sync_scores_fast(random_syncnet, bgr, audio, chunk_frames=4)


def test_jpeg_round_trip_is_lossy_but_close():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64]
    smooth = np.stack([2 * yy + xx, 3 * xx, 128 + yy], -1)[None] + rng.normal(0, 4, (2, 64, 64, 3))
    frames = np.clip(smooth, 0, 255).astype(np.uint8)
    out = jpeg_round_trip(frames, 95)
    assert out.shape == frames.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(int) - frames.astype(int))
    assert 0 < diff.mean() < 5


def _s(c, d, n):
    return SyncScores(offset_frames=0, min_dist=d, confidence=c, n_windows=n, mean_dists=(d,))


def test_aggregation_longest_track_mean_over_videos_and_no_face_count():
    # counted by kind: a reason that mentions a face but is of another kind is not "without a face"
    agg = aggregate_sync({"a": [_s(1.0, 9.0, 10), _s(5.0, 7.0, 40)], "b": [_s(3.0, 8.0, 20)], "c": []},
                         failures={"d": "NoFaceError: no face found in d.mp4", "e": "CorruptMediaError: bad",
                                   "f": "TooShortError: face clip too short"},
                         failure_kinds={"d": "no-face", "e": "unreadable-video", "f": "too-short"})
    assert agg.per_video["a"].confidence == 5.0
    assert agg.sync_c == pytest.approx(4.0) and agg.sync_d == pytest.approx(7.5)
    assert agg.n_videos == 2 and agg.n_without_face == 2
    assert set(agg.failures) == {"c", "d", "e", "f"} and agg.failure_kinds["c"] == "no-face"
    empty = aggregate_sync({"x": []})
    assert np.isnan(empty.sync_c) and empty.n_without_face == 1
    with pytest.raises(ValueError, match="no failure kind"):
        aggregate_sync({}, failures={"g": "something"})


def test_score_sync_video_from_an_encoded_file(tmp_path):
    # H.264 + AAC file -> decode at 25 fps -> track with a fixed-box detector -> crop -> fast scores
    from dicetalk_bench import media
    from dicetalk_bench.metrics.sync import score_sync_video
    from dicetalk_bench.preprocessing.faces import Detection, FaceTrack

    frames224, audio = synthetic_clip(100, seed=6)
    frames = np.full((100, 320, 320, 3), 90, np.uint8)
    frames[:, 40:264, 48:272] = frames224
    # box such that the SyncNet crop (rows y-s..y+1.8s, cols x-1.4s..x+1.4s) is exactly the 224 clip:
    # s = 80 -> rows 40..264 with y = 120, cols 48..272 with x = 160
    box = np.array([80, 40, 240, 200], np.float32)

    class FixedDetector:
        def detect(self, frame):
            return [Detection(box_xyxy=box, keypoints=np.zeros((6, 2), np.float32), score=0.99)]

    k = 4
    path = media.write_video(tmp_path / "clip.mp4", frames, 25.0, audio=delay(audio, k)[:100 * 640] / 32768.0,
                             audio_rate=16000, crf=12)
    s = score_sync_video(path, HandEmbedder(), detector=FixedDetector())
    assert s.n_windows == 95
    # AAC priming/padding may move the audio by a fraction of a frame
    assert abs(s.offset_frames - (-k)) <= 1
    with pytest.raises(ValueError, match="face track has"):
        short = FaceTrack(boxes_xyxy=np.tile(box, (10, 1)), keypoints=np.zeros((10, 6, 2), np.float32),
                          scores=np.ones(10, np.float32), detected=np.ones(10, bool), fps=25.0, frame_size=(320, 320))
        score_sync_video(path, HandEmbedder(), face_track=short)
