"""SyncNet crop against a box computed by hand and the original's pad-then-slice recipe."""

import cv2
import numpy as np
import pytest
from scipy.signal import medfilt

from dicetalk_bench.metrics.sync_crop import crop_clip, crop_frame, crop_params, crop_window


def test_crop_of_a_hand_computed_box():
    # box (100, 120) - (200, 240): w = 100, h = 120 -> s = 60, centre (150, 180).
    # rows y - s .. y + 1.8 s = 120 .. 288; cols x - 1.4 s .. x + 1.4 s = 66 .. 234 (168 x 168 = 2.8 s square).
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(15, 400, 400, 3), dtype=np.uint8)
    boxes = np.tile(np.array([100, 120, 200, 240], np.float32), (15, 1))
    cx, cy, s = crop_params(boxes)
    np.testing.assert_array_equal(s, 60.0)
    np.testing.assert_array_equal(cx, 150.0)
    np.testing.assert_array_equal(cy, 180.0)
    assert crop_window(150.0, 180.0, 60.0) == (120, 288, 66, 234)
    crops = crop_clip(frames, boxes)
    assert crops.shape == (15, 224, 224, 3) and crops.dtype == np.uint8
    for t in (0, 7, 14):
        np.testing.assert_array_equal(crops[t], cv2.resize(frames[t, 120:288, 66:234], (224, 224)))


def _original_crop(frame, cx, cy, s):
    # the original recipe: pad the whole frame by int(1.8 s) with 110, slice, resize
    bsi = int(s * 1.8)
    padded = np.pad(frame, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=(110, 110))
    my, mx = cy + bsi, cx + bsi
    face = padded[int(my - s):int(my + s * 1.8), int(mx - s * 1.4):int(mx + s * 1.4)]
    return cv2.resize(face, (224, 224))


@pytest.mark.parametrize("box", [(2.5, 3.2, 70.9, 90.1), (60.3, 50.0, 119.0, 119.7), (-10.0, 30.0, 50.0, 100.0)])
def test_crop_near_edges_pads_with_110_like_the_original(box):
    rng = np.random.default_rng(1)
    frame = rng.integers(0, 256, size=(120, 120, 3), dtype=np.uint8)
    x1, y1, x2, y2 = box
    s = max(x2 - x1, y2 - y1) / 2
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    ours = crop_frame(frame, cx, cy, s)
    np.testing.assert_array_equal(ours, _original_crop(frame, cx, cy, s))
    assert (ours == 110).any()  # part of the crop lies outside the frame


def test_median_filter_over_13_frames_with_zero_padded_ends():
    rng = np.random.default_rng(2)
    t = 30
    centres = 100 + np.cumsum(rng.normal(0, 3, t))
    half = 40 + rng.normal(0, 2, t)
    boxes = np.stack([centres - half, centres - half, centres + half, centres + half], 1)
    cx, cy, s = crop_params(boxes)
    np.testing.assert_allclose(cx, medfilt(centres, 13))
    np.testing.assert_allclose(s, medfilt(2 * half / 2, 13))
    # interior frame: plain median of the 13 neighbours
    assert cx[15] == pytest.approx(np.median(centres[9:22]))


def test_bad_boxes_raise():
    with pytest.raises(ValueError, match="xyxy"):
        crop_params(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        crop_params(np.full((3, 4), np.nan))
    with pytest.raises(ValueError, match="frames but"):
        crop_clip(np.zeros((2, 10, 10, 3), np.uint8), np.zeros((3, 4)))
