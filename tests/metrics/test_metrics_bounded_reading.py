"""Bounded-memory reading of FVD clips and paired-metric frames equals the whole-video reading, value for value."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from dicetalk_bench import media, weights
from dicetalk_bench.errors import TooShortError
from dicetalk_bench.metrics import pixel
from dicetalk_bench.metrics.fvd import FVDConfig, video_clip_features, whole_video_clip_features
from dicetalk_bench.metrics.registry import ScoreRequest, compute_metrics
from dicetalk_bench.metrics.video_set import VideoEntry, list_videos, read_pair, score_pair_chunks


def _moving(seed: int, n: int, h: int, w: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return np.stack([np.roll(base, 2 * t, axis=1) for t in range(n)])


class RecordingModel:
    """Stands in for I3D: keeps every input batch and returns 400 numbers that depend on it."""

    def __init__(self) -> None:
        self.inputs: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.clone())
        return x.mean(dim=(1, 3, 4)).repeat(1, 400)[:, :400]


@pytest.fixture(scope="module")
def fvd_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("fvd_bounded")
    paths = {}
    for i, n in enumerate((40, 16, 9, 5)):
        paths[f"v{n}"] = root / f"v{n}.mp4"
        media.write_video(paths[f"v{n}"], _moving(i, n, 24, 32), fps=25)
    return paths


@pytest.mark.parametrize("clips_per_video", [1, 3])
def test_fvd_clips_equal_the_whole_video_reading(fvd_videos, clips_per_video):
    cfg = FVDConfig(clip_length=9, size=193, clips_per_video=clips_per_video, seed=4, batch_size=2)
    for clip_id in ("v40", "v16", "v9"):
        bounded, whole = RecordingModel(), RecordingModel()
        a = video_clip_features(bounded, clip_id, fvd_videos[clip_id], cfg)
        b = whole_video_clip_features(whole, clip_id, fvd_videos[clip_id], cfg)
        assert np.array_equal(a, b) and a.shape == (min(clips_per_video, int(clip_id[1:]) - 8), 400)
        assert len(bounded.inputs) == len(whole.inputs)
        assert all(torch.equal(x, y) for x, y in zip(bounded.inputs, whole.inputs))


def test_fvd_too_short_video_is_a_per_item_failure_in_both(fvd_videos):
    cfg = FVDConfig(clip_length=9, size=193)
    for reader in (video_clip_features, whole_video_clip_features):
        with pytest.raises(TooShortError, match="5 frames, fewer than the FVD clip length 9"):
            reader(RecordingModel(), "v5", fvd_videos["v5"], cfg)


@pytest.mark.parametrize("declared", [None, 30, 60, 12, 3])
def test_fvd_wrong_or_missing_header_count_still_gives_the_same_clips(fvd_videos, monkeypatch, declared):
    # the offsets come from the header's count; when it is wrong or absent the true count decides (second pass)
    real_probe = media.probe
    monkeypatch.setattr(media, "probe", lambda p: dataclasses.replace(real_probe(p), n_frames=declared))
    cfg = FVDConfig(clip_length=9, size=193, clips_per_video=2, seed=1)
    bounded, whole = RecordingModel(), RecordingModel()
    assert np.array_equal(video_clip_features(bounded, "v40", fvd_videos["v40"], cfg),
                          whole_video_clip_features(whole, "v40", fvd_videos["v40"], cfg))
    assert all(torch.equal(x, y) for x, y in zip(bounded.inputs, whole.inputs))


# ------------------------------------------------------------------------------------------------ paired metrics
@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """(generated, reference) entries covering every alignment case, frames 64x64 (LPIPS' AlexNet needs them)."""
    root = tmp_path_factory.mktemp("paired_bounded")
    gen = _moving(0, 40, 64, 64)
    noisy = np.clip(gen.astype(np.int16) + np.random.default_rng(1).integers(-20, 21, gen.shape), 0, 255)
    cases = {
        "shorter_reference": (gen, noisy[:30].astype(np.uint8), 25, 25),
        "longer_reference": (gen[:19], noisy.astype(np.uint8), 25, 25),
        "other_fps": (gen, _moving(2, 47, 64, 64), 25, 30),
        "other_size": (gen[:33], _moving(3, 33, 48, 80), 25, 25),
        "identical": (gen[:20], None, 25, 25),  # the same file (two H.264 encodes of equal frames can differ)
    }
    out = {}
    for cid, (g, r, gfps, rfps) in cases.items():
        media.write_video(root / "gen" / f"{cid}.mp4", g, fps=gfps)
        if r is None:
            shutil.copyfile(root / "gen" / f"{cid}.mp4", root / "ref" / f"{cid}.mp4")
        else:
            media.write_video(root / "ref" / f"{cid}.mp4", r, fps=rfps)
        out[cid] = (VideoEntry(cid, root / "gen" / f"{cid}.mp4"), VideoEntry(cid, root / "ref" / f"{cid}.mp4"))
    return root, out


@pytest.fixture(scope="module")
def lpips_random(tmp_path_factory):
    path = weights.make_random("lpips-alex", tmp_path_factory.mktemp("alex"), seed=0)
    return pixel.load_lpips(path, allow_unverified=True)[0], path


def test_paired_frames_in_chunks_equal_the_whole_pair(pairs, lpips_random):
    chunk_frames = 16  # the registry test below uses the default (32)
    _, cases = pairs
    lpips, _ = lpips_random
    scorers = {"psnr": (pixel.frame_psnr, pixel.video_psnr), "ssim": (pixel.frame_ssim, pixel.video_ssim),
               "lpips": (lpips, lpips.video)}
    for cid, (gen, ref) in cases.items():
        whole = read_pair(gen, ref)
        for name, (per_frames, per_video) in scorers.items():
            chunked = score_pair_chunks(gen, ref, per_frames, chunk_frames=chunk_frames)
            assert np.array_equal(chunked.values, per_frames(whole.generated, whole.reference)), (cid, name)
            assert float(np.mean(chunked.values)) == per_video(whole.generated, whole.reference), (cid, name)
            assert (chunked.n_frames, chunked.dropped_generated, chunked.dropped_reference,
                    chunked.resized_reference, chunked.fps) == (len(whole.generated), whole.dropped_generated,
                                                                whole.dropped_reference, whole.resized_reference,
                                                                whole.fps), cid
    assert score_pair_chunks(*cases["shorter_reference"], pixel.frame_psnr).dropped_generated == 10
    assert score_pair_chunks(*cases["longer_reference"], pixel.frame_psnr).dropped_reference == 21
    assert score_pair_chunks(*cases["other_size"], pixel.frame_psnr).resized_reference
    assert np.all(score_pair_chunks(*cases["identical"], pixel.frame_psnr).values == pixel.PSNR_CAP_DB)


def test_registry_paired_metrics_equal_the_whole_video_formula(pairs, lpips_random):
    root, cases = pairs
    lpips, path = lpips_random
    req = ScoreRequest(videos=root / "gen", reference=root / "ref", weights={"lpips-alex": str(path)},
                       allow_unverified=True)
    results = {r.key: r for r in compute_metrics(["psnr", "ssim", "lpips"], req)}
    whole = {cid: read_pair(g, r) for cid, (g, r) in cases.items()}
    formulas = {"psnr": pixel.video_psnr, "ssim": pixel.video_ssim, "lpips": lpips.video}
    for key, formula in formulas.items():
        expected = {cid: formula(p.generated, p.reference) for cid, p in whole.items()}
        assert results[key].per_video == expected, key
        assert results[key].value == float(np.mean([expected[c] for c in sorted(expected)]))  # clip-id order
        assert results[key].n_frames == sum(len(p.generated) for p in whole.values())
        assert results[key].extra["dropped_frames"] == {
            cid: [p.dropped_generated, p.dropped_reference] for cid, p in whole.items()
            if p.dropped_generated or p.dropped_reference}
        assert set(results[key].extra["dropped_frames"]) >= {"shorter_reference", "longer_reference"}
        assert results[key].extra["resized_reference"] == ["other_size"]
    assert list_videos(root / "gen").clip_ids == sorted(cases)


def test_a_broken_reference_is_a_per_item_failure(pairs, tmp_path):
    root, cases = pairs
    gen, _ = cases["identical"]
    broken = tmp_path / "identical.mp4"
    broken.write_bytes(b"not a video")
    with pytest.raises(media.CorruptMediaError):
        score_pair_chunks(gen, VideoEntry("identical", broken), pixel.frame_psnr)
