"""How the DICE-Talk release prepares a portrait for sampling: optional face crop, image size, soft face mask.

Facts from the release (toto222/DICE-Talk a8a92b1: ``src/dataset/test_preprocess.py``, ``dice_talk.py``,
``demo.py``), implemented here as pure functions:

- **Crop** (``demo.py --crop``, :func:`release_crop_box`): the face box grows by ``expand`` (0.5) of its width and
  height on each side and is clamped to the image; the square of side min(w, h) of that region is centred on it,
  its centre moved along the longer side towards the face centre by at most half the difference of the sides;
  corners rounded to integers. At image borders the square is therefore smaller than the expanded box.
- **Size** (:func:`release_image_size`): the shorter side becomes ``short_side`` (512) and both sides are rounded
  to multiples of 64; non-square portraits keep their aspect. Images and masks are resized with LANCZOS.
- **Face mask** (:func:`release_mask_box`, :func:`face_mask_image`): the detector box scaled by ``area`` (1.1) about
  its integer centre, clamped, drawn as a filled rectangle at the source size, then resized with the image
  (LANCZOS), so its edges are soft after resizing.

Our preprocessing crop (``dicetalk_bench.preprocessing.crop``), which made the training data, is a different rule.
"""

from __future__ import annotations

import math

import numpy as np

#: Release defaults (demo.py / dice_talk.yaml).
CROP_EXPAND = 0.5
MASK_AREA = 1.1
SHORT_SIDE = 512
SIZE_MULTIPLE = 64


def release_crop_box(box_xyxy: np.ndarray | tuple[float, float, float, float], width: int, height: int,
                     expand: float = CROP_EXPAND) -> tuple[int, int, int, int]:
    """Square crop (x1, y1, x2, y2) in integer pixels for a face box in an image of ``width`` x ``height``.

    Expanded region: [x1 - e w, x2 + e w] x [y1 - e h, y2 + e h] clamped to the image (w, h: the box's sides).
    Side s = min(region w, region h); the square is centred on the region's centre, moved along the longer side
    towards the face box's centre by min(|face centre - region centre|, |region w - region h| / 2). Corners are
    rounded (Python ``round``: halves to even, as the release).
    """
    bx1, by1, bx2, by2 = (float(v) for v in box_xyxy)
    bw, bh = bx2 - bx1, by2 - by1
    ex1, ey1 = max(bx1 - expand * bw, 0.0), max(by1 - expand * bh, 0.0)
    ex2, ey2 = min(bx2 + expand * bw, float(width)), min(by2 + expand * bh, float(height))
    ew, eh = ex2 - ex1, ey2 - ey1
    cx, cy = (ex1 + ex2) / 2, (ey1 + ey2) / 2
    fx, fy = (bx1 + bx2) / 2, (by1 + by2) / 2
    slack = abs(eh - ew) / 2
    if ew < eh:
        cy += math.copysign(min(slack, abs(fy - cy)), 1.0 if fy > cy else -1.0)
    else:
        cx += math.copysign(min(slack, abs(fx - cx)), 1.0 if fx > cx else -1.0)
    side = min(ew, eh)
    return (round(cx - side / 2), round(cy - side / 2), round(cx + side / 2), round(cy + side / 2))


def release_image_size(width: int, height: int, short_side: int = SHORT_SIDE, multiple: int = SIZE_MULTIPLE
                       ) -> tuple[int, int]:
    """(new_width, new_height): shorter side scaled to ``short_side``, both rounded to multiples of ``multiple``."""
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    scale = short_side / min(width, height)
    return (max(multiple, round(width * scale / multiple) * multiple),
            max(multiple, round(height * scale / multiple) * multiple))


def release_mask_box(box_xyxy: np.ndarray | tuple[float, float, float, float], width: int, height: int,
                     area: float = MASK_AREA) -> tuple[int, int, int, int]:
    """Integer face-mask rectangle (x1, y1, x2, y2; x2, y2 exclusive) from a detector box.

    Centre (floor((x1 + x2) / 2), floor((y1 + y2) / 2)); half sides floor(area w / 2), floor(area h / 2);
    clamped to the image; corners truncated to integers.
    """
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    hw, hh = ((x2 - x1) * area) // 2, ((y2 - y1) * area) // 2
    return (int(max(cx - hw, 0)), int(max(cy - hh, 0)), int(min(cx + hw, width)), int(min(cy + hh, height)))


def face_mask_image(rect_xyxy: tuple[int, int, int, int], width: int, height: int) -> np.ndarray:
    """(height, width) uint8 mask, 255 inside the rectangle ``[y1:y2, x1:x2]`` (integer bounds), 0 outside."""
    x1, y1, x2, y2 = (int(v) for v in rect_xyxy)
    mask = np.zeros((height, width), np.uint8)
    mask[max(y1, 0):max(y2, 0), max(x1, 0):max(x2, 0)] = 255
    return mask


def resize_lanczos(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """uint8 (H, W) or (H, W, 3) resized with PIL's LANCZOS filter (unchanged when the size already matches)."""
    from PIL import Image

    if image.shape[1] == width and image.shape[0] == height:
        return image
    return np.asarray(Image.fromarray(image).resize((width, height), Image.LANCZOS))


def soft_face_mask(rect_xyxy: tuple[int, int, int, int], src_width: int, src_height: int, width: int, height: int
                   ) -> np.ndarray:
    """(height, width) float32 mask in [0, 1]: the rectangle drawn at the source size, LANCZOS-resized."""
    return resize_lanczos(face_mask_image(rect_xyxy, src_width, src_height), width, height).astype(np.float32) / 255.0
