"""Crop geometry against closed forms and round trips."""

from __future__ import annotations

import numpy as np

from dicetalk_bench.preprocessing import crop


def test_square_from_box_dicetalk_rule() -> None:
    c, side = crop.square_from_box(np.array([[10, 20, 50, 100]]), 0.5)
    np.testing.assert_allclose(c, [[30, 60]])
    np.testing.assert_allclose(side, [160.0])  # max(40, 80) * (1 + 2 * 0.5)


def test_matrix_maps_square_onto_output_and_round_trips() -> None:
    m = crop.crop_matrix(np.array([30.0, 60.0]), 160.0, 128)
    corners = np.array([[-50.0, -20.0], [110.0, 140.0], [30.0, 60.0]])
    np.testing.assert_allclose(crop.apply_affine(m, corners), [[0, 0], [128, 128], [64, 64]], atol=1e-9)
    back = crop.apply_affine(crop.invert_affine(m), crop.apply_affine(m, corners))
    np.testing.assert_allclose(back, corners, atol=1e-9)


def test_roll_alignment_levels_the_eyes() -> None:
    kps = np.zeros((6, 2))
    kps[0] = [40, 50]
    kps[1] = [80, 70]  # eye line goes down to the right: angle atan2(20, 40)
    angle = float(crop.eye_roll(kps))
    np.testing.assert_allclose(angle, np.arctan2(20, 40))
    m = crop.crop_matrix(kps[:2].mean(0), 100.0, 100, angle)
    eyes = crop.apply_affine(m, kps[:2])
    np.testing.assert_allclose(eyes[0, 1], eyes[1, 1], atol=1e-9)
    assert eyes[1, 0] > eyes[0, 0]
    np.testing.assert_allclose(np.linalg.norm(eyes[1] - eyes[0]), np.hypot(40, 20), atol=1e-9)  # scale 1
    cfg = crop.CropConfig(size=100, expand_ratio=0.0, align_roll=True)
    ms = crop.crop_matrices(np.array([[10, 10, 110, 110]] * 2), np.stack([kps, kps]), cfg)
    assert ms.shape == (2, 2, 3)


def test_map_and_scale_boxes() -> None:
    m = crop.crop_matrix(np.array([50.0, 50.0]), 100.0, 200)  # scale 2, origin at (0, 0)
    np.testing.assert_allclose(crop.map_boxes(m, np.array([10, 20, 30, 60])), [20, 40, 60, 120])
    np.testing.assert_allclose(crop.scale_boxes(np.array([0, 0, 10, 20]), 1.1), [-0.5, -1, 10.5, 21])
    np.testing.assert_allclose(crop.scale_boxes(np.array([0, 0, 10, 20]), 1.1, limit=20), [0, 0, 10.5, 20])


def test_warp_moves_pixels_where_the_matrix_says_and_pads_black() -> None:
    img = np.zeros((60, 80, 3), np.uint8)
    img[30, 40] = 255  # one white pixel at x=40, y=30
    m = crop.crop_matrix(np.array([40.0, 30.0]), 40.0, 40)  # 1:1 scale, centre -> (20, 20)
    out = crop.warp(img, m, 40)
    assert out.shape == (40, 40, 3)
    y, x = np.unravel_index(np.argmax(out[..., 0]), out.shape[:2])
    assert (x, y) == (20, 20)
    # a crop hanging off the frame is black there
    out2 = crop.warp(np.full((60, 80, 3), 200, np.uint8), crop.crop_matrix(np.array([0.0, 0.0]), 40.0, 40), 40)
    assert out2[:15, :15].max() == 0 and out2[25:, 25:].min() == 200
