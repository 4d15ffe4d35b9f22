"""Crop geometry (pure functions): square crop around a face box, optional eye-line roll, source <-> crop maps,
and the plain square face crops the emotion classifiers read (:func:`square_face_crops`).

The crop is a similarity transform from source pixels ``p`` to crop pixels ``q``::

    q = s * R(-theta) @ (p - c) + (size / 2, size / 2),   s = size / side

with ``c`` the crop centre (source pixels), ``side`` the square's side in source pixels and ``theta`` the
eye-line angle (0 without roll alignment). It is stored as a 2x3 affine matrix (OpenCV convention).

Square rule of this toolkit's training data: the square around the box centre with
``side = max(w, h) * (1 + 2 * expand_ratio)`` (``expand_ratio = 0.5``: side = 2 x the box's longer side);
parts of the square outside the frame are filled with black, so the face stays centred at every border.
This is *not* the DICE-Talk release's crop (its ``process_bbox`` clamps the expanded box to the image and takes
a square of side min(w, h) of it, moved towards the face; implemented for sampling in
``dicetalk_bench.model.release_image``). The face-region mask box is the face box scaled by 1.1 about its centre
(DICE-Talk ``area: 1.1``), in crop pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CropConfig:
    """``size``: output side in pixels (512 in DICE-Talk); ``expand_ratio``: see module docstring;
    ``align_roll``: rotate so the eye line is horizontal; ``mask_scale``: face-mask box scale."""

    size: int = 512
    expand_ratio: float = 0.5
    align_roll: bool = False
    mask_scale: float = 1.1


def square_from_box(boxes_xyxy: np.ndarray, expand_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """(..., 4) boxes -> centres (..., 2) and square sides (...,) in source pixels."""
    b = np.asarray(boxes_xyxy, dtype=np.float64)
    centre = np.stack([(b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2], axis=-1)
    side = np.maximum(b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]) * (1.0 + 2.0 * expand_ratio)
    return centre, side


def eye_roll(keypoints: np.ndarray) -> np.ndarray:
    """Eye-line angle in radians from (..., 6, 2) mediapipe keypoints (0: right eye, 1: left eye).

    The subject's right eye appears on the image's left, so for an upright face the vector right->left eye
    points along +x and the angle is 0; positive angles mean the line goes down to the image right (y down).
    """
    k = np.asarray(keypoints, dtype=np.float64)
    d = k[..., 1, :] - k[..., 0, :]
    return np.arctan2(d[..., 1], d[..., 0])


def crop_matrix(centre: np.ndarray, side: float, size: int, angle: float = 0.0) -> np.ndarray:
    """2x3 float64 affine source -> crop for one frame (see module docstring)."""
    s = size / float(side)
    ca, sa = np.cos(angle), np.sin(angle)
    lin = s * np.array([[ca, sa], [-sa, ca]])  # s * R(-angle)
    t = np.array([size / 2.0, size / 2.0]) - lin @ np.asarray(centre, dtype=np.float64)
    return np.concatenate([lin, t[:, None]], axis=1)


def crop_matrices(boxes_xyxy: np.ndarray, keypoints: np.ndarray | None, config: CropConfig) -> np.ndarray:
    """(T, 4) boxes (+ (T, 6, 2) keypoints when ``align_roll``) -> (T, 2, 3) float64 affines."""
    centres, sides = square_from_box(boxes_xyxy, config.expand_ratio)
    angles = eye_roll(keypoints) if (config.align_roll and keypoints is not None) else np.zeros(len(sides))
    return np.stack([crop_matrix(c, s, config.size, a) for c, s, a in zip(centres, sides, angles)])


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a (..., 2, 3) affine (crop -> source)."""
    m = np.asarray(m, dtype=np.float64)
    lin_inv = np.linalg.inv(m[..., :2])
    t = -np.einsum("...ij,...j->...i", lin_inv, m[..., 2])
    return np.concatenate([lin_inv, t[..., None]], axis=-1)


def apply_affine(m: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map (..., N, 2) points with (..., 2, 3) affines (batched over the leading axes)."""
    m = np.asarray(m, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    return np.einsum("...ij,...nj->...ni", m[..., :2], p) + m[..., None, :, 2]


def box_corners(boxes_xyxy: np.ndarray) -> np.ndarray:
    """(..., 4) xyxy -> (..., 4, 2) corners."""
    b = np.asarray(boxes_xyxy, dtype=np.float64)
    x0, y0, x1, y1 = (b[..., i] for i in range(4))
    return np.stack([np.stack([x0, y0], -1), np.stack([x1, y0], -1), np.stack([x1, y1], -1), np.stack([x0, y1], -1)], -2)


def map_boxes(m: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    """Axis-aligned bounds of boxes mapped by affines: (..., 4) -> (..., 4)."""
    pts = apply_affine(m, box_corners(boxes_xyxy))
    return np.concatenate([pts.min(axis=-2), pts.max(axis=-2)], axis=-1)


def scale_boxes(boxes_xyxy: np.ndarray, scale: float, limit: float | None = None) -> np.ndarray:
    """Scale (..., 4) boxes about their centres; clip to ``[0, limit]`` when given."""
    b = np.asarray(boxes_xyxy, dtype=np.float64)
    c = np.stack([(b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2], -1)
    half = np.stack([(b[..., 2] - b[..., 0]) / 2, (b[..., 3] - b[..., 1]) / 2], -1) * scale
    out = np.concatenate([c - half, c + half], axis=-1)
    return np.clip(out, 0.0, limit) if limit is not None else out


def warp(frame: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Crop one (H, W, 3) uint8 frame with a 2x3 affine to (size, size, 3) uint8; outside is black."""
    import cv2

    return cv2.warpAffine(frame, np.asarray(m, dtype=np.float64), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def square_face_crops(frames: np.ndarray, boxes_xyxy: np.ndarray, scale: float = 1.2, size: int = 224) -> np.ndarray:
    """(T, H, W, 3) frames + (T, 4) boxes -> (T, size, size, 3) square crops of side scale * larger box side
    centred on the box (outside the frame: 0)."""
    import cv2

    out = np.zeros((len(frames), size, size, 3), np.uint8)
    for t, (f, b) in enumerate(zip(frames, np.asarray(boxes_xyxy, np.float64))):
        side = scale * max(b[2] - b[0], b[3] - b[1])
        cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
        x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        n = max(int(round(side)), 1)
        canvas = np.zeros((n, n, 3), np.uint8)
        h, w = f.shape[:2]
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + n, w), min(y0 + n, h)
        if sx1 > sx0 and sy1 > sy0:
            canvas[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = f[sy0:sy1, sx0:sx1]
        out[t] = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA)
    return out
