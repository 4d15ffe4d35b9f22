"""The release's portrait preparation: crop rule near every border and for portrait and landscape inputs, image
size, face-mask rectangle and its soft edges. Every expectation is worked out by hand in the comment beside it."""

from __future__ import annotations

import numpy as np
import pytest

from dicetalk_bench.model.release_image import (face_mask_image, release_crop_box, release_image_size,
                                                release_mask_box, soft_face_mask)

LANDSCAPE = (1000, 600)  # width, height
PORTRAIT = (600, 1000)


@pytest.mark.parametrize("size, box, expected", [
    # centred 100 x 100 face: expanded by 50 each side to 200 x 200, already square
    (LANDSCAPE, (450, 250, 550, 350), (400, 200, 600, 400)),
    # left border: x from max(10 - 50, 0) = 0 to 160 (w 160) < h 200 -> side 160, y centre 300 (face centre)
    (LANDSCAPE, (10, 250, 110, 350), (0, 220, 160, 380)),
    # top border: y from 0 to 156 (h 156) < w 200 -> side 156 about (500, 78)
    (LANDSCAPE, (450, 6, 550, 106), (422, 0, 578, 156)),
    # right border: x from 840 to min(1040, 1000) = 1000 (w 160) -> side 160 about (920, 300)
    (LANDSCAPE, (890, 250, 990, 350), (840, 220, 1000, 380)),
    # bottom border: y from 430 to min(630, 600) = 600 (h 170) < w 200 -> side 170 about (500, 515)
    (LANDSCAPE, (450, 480, 550, 580), (415, 430, 585, 600)),
    # wide face at the left border: region x 0..450, y 180..420 (w 450 > h 240); centre x 225 moves towards the
    # face centre 150 by min(75, (450 - 240) / 2 = 105) = 75 -> 150; side 240
    (LANDSCAPE, (0, 240, 300, 360), (30, 180, 270, 420)),
    # the move is capped at half the side difference: region x 0..300 (face 0..200), y 180..420: centre x 150,
    # face centre 100, cap (300 - 240) / 2 = 30 -> x centre 120, side 240
    (LANDSCAPE, (0, 240, 200, 360), (0, 180, 240, 420)),
    # portrait input, tall face near the top: region x 200..400, y 0..320 (h > w): centre y 160 moves towards the
    # face centre 120 by min(40, 60) -> 120, side 200
    (PORTRAIT, (250, 20, 350, 220), (200, 20, 400, 220)),
    # portrait input, centred face: region 200 x 400, centre y already the face's -> side 200 about (300, 400)
    (PORTRAIT, (250, 300, 350, 500), (200, 300, 400, 500)),
])
def test_crop_rule_closed_forms(size, box, expected):
    w, h = size
    got = release_crop_box(np.array(box, np.float32), w, h)
    assert got == expected
    x1, y1, x2, y2 = got
    assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and (x2 - x1) == (y2 - y1)


def test_crop_rounds_halves_to_even_like_the_release():
    # top border with region h 155: centre (500, 77.5), side 155 -> x 422.5 -> 422, 577.5 -> 578; y 0, 155
    assert release_crop_box((450, 5, 550, 105), 1000, 600) == (422, 0, 578, 155)


@pytest.mark.parametrize("size, expected", [
    ((512, 512), (512, 512)),
    ((600, 1000), (512, 832)),   # 1000 * 512 / 600 = 853.3 -> 13.33 * 64 -> 832
    ((1920, 1080), (896, 512)),  # 1920 * 512 / 1080 = 910.2 -> 14.2 * 64 -> 896
    ((1000, 600), (832, 512)),
])
def test_image_size_keeps_the_aspect_in_multiples_of_64(size, expected):
    assert release_image_size(*size) == expected
    assert release_image_size(40, 48, short_side=32, multiple=32) == (32, 32)  # tiny models: multiples of 32


def test_mask_rectangle_scales_the_box_about_its_integer_centre():
    # centre (150, 160); half sides floor(110 / 2) = 55 and floor(132 / 2) = 66
    assert release_mask_box((100, 100, 200, 220), 640, 480) == (95, 94, 205, 226)
    # at the corner: clamped to 0; x2 = 25 + floor(55 / 2) = 52
    assert release_mask_box((0, 0, 50, 50), 640, 480) == (0, 0, 52, 52)
    # at the far border: clamped to the image size
    assert release_mask_box((600, 440, 640, 480), 640, 480)[2:] == (640, 480)


def test_mask_is_hard_at_the_source_size_and_soft_after_resizing():
    hard = face_mask_image((95, 94, 205, 226), 640, 480)
    assert hard.dtype == np.uint8 and set(np.unique(hard)) == {0, 255}
    assert hard[94:226, 95:205].min() == 255 and hard.sum() == 255 * 110 * 132
    soft = soft_face_mask((95, 94, 205, 226), 640, 480, 96, 72)
    assert soft.shape == (72, 96) and soft.min() >= 0 and soft.max() <= 1
    assert soft[20, 22] == pytest.approx(1.0) and soft[0, 0] == 0.0  # inside / far outside
    # the top edge at y = 94 * 72 / 480 = 14.1 and the left edge at x = 95 * 96 / 640 = 14.25 fall inside a row /
    # column, which gets an intermediate value (measured 0.87 and 0.74); LANCZOS rings slightly around it
    assert 0.5 < soft[14, 20] < 0.95 and 0.5 < soft[30, 14] < 0.95
    assert soft[12, 20] < 0.05 and soft[30, 12] < 0.05
