"""FVD protocol pieces: clip offsets, preprocessing to [-1, 1] at 224, configuration errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dicetalk_bench.metrics.fid import FIDConfig, center_crop
from dicetalk_bench.metrics.fvd import FVDConfig, centre_crop_offsets, clip_offsets, preprocess_clips, resized_shape


def test_clip_offsets_deterministic_per_clip_id_and_in_range():
    cfg = FVDConfig(clips_per_video=3, seed=7)
    a = clip_offsets("M003_angry_001", 100, cfg)
    assert np.array_equal(a, clip_offsets("M003_angry_001", 100, cfg))
    assert len(a) == 3 and len(set(a.tolist())) == 3 and np.all(np.diff(a) > 0)
    assert a.min() >= 0 and a.max() <= 100 - 16
    assert not np.array_equal(a, clip_offsets("M003_angry_002", 100, cfg))
    assert not np.array_equal(a, clip_offsets("M003_angry_001", 100, FVDConfig(clips_per_video=3, seed=8)))


def test_clip_offsets_short_videos():
    cfg = FVDConfig(clips_per_video=4)
    assert clip_offsets("x", 15, cfg).size == 0          # shorter than one clip: no clip (recorded as failure)
    assert clip_offsets("x", 16, cfg).tolist() == [0]    # exactly one position
    assert clip_offsets("x", 18, cfg).tolist() == [0, 1, 2]  # fewer positions than clips: all of them


def test_preprocess_range_and_layout():
    clips = np.zeros((2, 9, 224, 224, 3), np.uint8)
    clips[0] = 255
    clips[1, 3, :, :, 1] = 128
    x = preprocess_clips(clips, FVDConfig())
    assert x.shape == (2, 3, 9, 224, 224) and x.dtype == torch.float32
    assert torch.all(x[0] == 1.0) and x[1].min() == -1.0
    torch.testing.assert_close(x[1, 1, 3].unique(), torch.tensor([128 / 127.5 - 1]))
    assert torch.all(x[1, 0, 3] == -1.0)


def test_preprocess_resize_modes():
    rng = np.random.default_rng(0)
    clips = rng.integers(0, 256, (1, 9, 40, 60, 3), dtype=np.uint8)
    tf1 = preprocess_clips(clips, FVDConfig(resize="tf1"))
    bil = preprocess_clips(clips, FVDConfig(resize="bilinear"))
    assert tf1.shape == bil.shape == (1, 3, 9, 224, 224)
    assert tf1.min() >= -1 and tf1.max() <= 1 and not torch.allclose(tf1, bil)
    frames = torch.from_numpy(clips[0]).permute(0, 3, 1, 2).float()
    ref = torch.nn.functional.interpolate(frames, size=(224, 224), mode="bilinear", align_corners=False) / 127.5 - 1
    torch.testing.assert_close(bil[0].permute(1, 0, 2, 3), ref)


def test_config_and_input_errors():
    with pytest.raises(ValueError, match="at least 9 frames"):
        FVDConfig(clip_length=8)
    with pytest.raises(ValueError, match="backend"):
        FVDConfig(backend="c3d")
    with pytest.raises(ValueError, match="resize"):
        FVDConfig(resize="nearest")
    with pytest.raises(ValueError, match="uint8"):
        preprocess_clips(np.zeros((1, 9, 8, 8, 3), np.float32), FVDConfig())
    with pytest.raises(ValueError, match="crop"):
        FIDConfig(crop="face")
    with pytest.raises(ValueError, match="resize_mode"):
        FIDConfig(resize_mode="clean")


def test_center_crop():
    f = np.arange(2 * 4 * 6 * 3, dtype=np.uint8).reshape(2, 4, 6, 3)
    c = center_crop(f)
    assert c.shape == (2, 4, 4, 3) and np.array_equal(c, f[:, :, 1:5])


def _ramp_frame(h: int, w: int) -> np.ndarray:
    """(H, W, 3) uint8: channel 0 = column index, channel 1 = row index, channel 2 = 7 (linear ramps, W, H <= 256)."""
    f = np.zeros((h, w, 3), np.uint8)
    f[..., 0] = np.arange(w)[None, :]
    f[..., 1] = np.arange(h)[:, None]
    f[..., 2] = 7
    return f


def _bilinear_ramp(n_out: int, n_in: int, offset: int, n_resized: int) -> np.ndarray:
    """Closed form of F.interpolate(bilinear, align_corners=False) applied to the ramp 0..n_in-1 resized to
    n_resized samples, read at outputs offset .. offset + n_out - 1: source coordinate (j + 0.5) n_in / n_resized
    - 0.5, clamped to [0, n_in - 1] (a linear function is reproduced exactly between samples)."""
    j = np.arange(offset, offset + n_out, dtype=np.float64)
    return np.clip((j + 0.5) * n_in / n_resized - 0.5, 0, n_in - 1)


def _tf1_ramp(n_out: int, n_in: int, offset: int, n_resized: int) -> np.ndarray:
    """Closed form of TF1 legacy resize_bilinear (align_corners=False, no half-pixel centres): source j n_in /
    n_resized, clamped to n_in - 1."""
    j = np.arange(offset, offset + n_out, dtype=np.float64)
    return np.clip(j * n_in / n_resized, 0, n_in - 1)


def test_resized_shape_and_crop_offsets_closed_forms():
    # 176x144 (W x H): short side 144 -> 224, long side ceil(176 * 224 / 144) = ceil(273.78) = 274
    assert resized_shape(144, 176, 224, "short-side-centre-crop") == (224, 274)
    assert resized_shape(176, 144, 224, "short-side-centre-crop") == (274, 224)
    assert resized_shape(144, 176, 224, "squash") == (224, 224)
    assert resized_shape(300, 300, 224, "short-side-centre-crop") == (224, 224)
    assert resized_shape(112, 224, 224, "short-side-centre-crop") == (224, 448)  # exact scale: no ceil overshoot
    assert centre_crop_offsets(224, 274, 224) == (0, 25)
    assert centre_crop_offsets(275, 224, 224) == (25, 0)  # odd excess: the extra row goes to the bottom


@pytest.mark.parametrize("resize, ramp", [("bilinear", _bilinear_ramp), ("tf1", _tf1_ramp)])
def test_frame_geometry_on_a_ramp_frame(resize, ramp):
    h, w, size = 144, 176, 224
    clip = np.broadcast_to(_ramp_frame(h, w), (1, 9, h, w, 3)).copy()
    squash = preprocess_clips(clip, FVDConfig(resize=resize, frame_geometry="squash"))
    crop = preprocess_clips(clip, FVDConfig(resize=resize, frame_geometry="short-side-centre-crop"))
    assert squash.shape == crop.shape == (1, 3, 9, size, size)
    to_pixels = lambda x: (x[0, :, 4].double() + 1) * 127.5  # noqa: E731 - frame 4, back to 0..255 units
    sq, cr = to_pixels(squash), to_pixels(crop)
    # squash: both axes resized to 224 from their own length
    np.testing.assert_allclose(sq[0, 100].numpy(), ramp(size, w, 0, size), atol=1e-3)
    np.testing.assert_allclose(sq[1, :, 100].numpy(), ramp(size, h, 0, size), atol=1e-3)
    # short side: rows resized 144 -> 224 (no crop); columns resized 176 -> 274, then columns 25 .. 248 kept
    np.testing.assert_allclose(cr[0, 100].numpy(), ramp(size, w, 25, 274), atol=1e-3)
    np.testing.assert_allclose(cr[1, :, 100].numpy(), ramp(size, h, 0, size), atol=1e-3)
    torch.testing.assert_close(cr[2], torch.full((size, size), 7.0, dtype=torch.float64), atol=1e-4, rtol=0)
    # the crop drops the outer columns: its first column sits 25 resized pixels (~16 source pixels) inside the frame
    assert cr[0, :, 0].min() > 15 and sq[0, :, 0].max() < 1


def test_square_frames_are_the_same_under_both_geometries():
    clip = np.random.default_rng(3).integers(0, 256, (1, 9, 60, 60, 3), dtype=np.uint8)
    torch.testing.assert_close(preprocess_clips(clip, FVDConfig(frame_geometry="squash")),
                               preprocess_clips(clip, FVDConfig(frame_geometry="short-side-centre-crop")),
                               rtol=0, atol=0)


def test_protocol_records_eps_and_geometry():
    from dicetalk_bench.metrics.fvd import _protocol_key

    p = _protocol_key(FVDConfig())
    assert p["i3d_bn_eps"] == 1e-5 and p["frame_geometry"] == "squash"
    p = _protocol_key(FVDConfig(i3d_bn_eps=1e-3, frame_geometry="short-side-centre-crop"))
    assert p["i3d_bn_eps"] == 1e-3 and p["frame_geometry"] == "short-side-centre-crop"
    assert _protocol_key(FVDConfig(backend="i3d-torchscript"))["i3d_bn_eps"] is None  # fixed inside that file


def test_eps_and_geometry_option_errors(tmp_path):
    from dicetalk_bench.metrics.fvd import score_fvd
    from dicetalk_bench.metrics.registry import ScoreRequest

    with pytest.raises(ValueError, match="frame_geometry"):
        FVDConfig(frame_geometry="crop")
    for bad in (0.0, -1e-5, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="BatchNorm eps"):
            FVDConfig(i3d_bn_eps=bad)
    req = ScoreRequest(videos=tmp_path, reference=tmp_path,
                       options={"fvd.backend": "i3d-torchscript", "fvd.i3d_bn_eps": "1e-3"})
    with pytest.raises(ValueError, match="i3d-400 backend only"):
        score_fvd(req)
    req = ScoreRequest(videos=tmp_path, reference=tmp_path, options={"fvd.i3d_bn_eps": "small"})
    with pytest.raises(ValueError, match="expected a number"):
        score_fvd(req)
