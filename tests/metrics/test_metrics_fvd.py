"""FVD protocol pieces: clip offsets, preprocessing to [-1, 1] at 224, configuration errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dicetalk_bench.metrics.fid import FIDConfig, center_crop
from dicetalk_bench.metrics.fvd import FVDConfig, clip_offsets, preprocess_clips


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
