"""SyncNet face crop, as joonson/syncnet_python ``run_pipeline.crop_video`` makes it (crop_scale 0.4).

Per frame of a face track with boxes (x1, y1, x2, y2):
    s = max(w, h) / 2, centre (cx, cy); s, cx, cy each median-filtered over 13 frames (scipy.signal.medfilt, which
    zero-pads the ends, as the original does);
    the frame is padded by bsi = int(1.8 s) pixels of value 110 on every side;
    rows int(cy + bsi - s) .. int(cy + bsi + 1.8 s), cols int(cx + bsi - 1.4 s) .. int(cx + bsi + 1.4 s) of the padded
    frame (a 2.8 s square shifted down), resized to 224 x 224 with cv2 INTER_LINEAR.
The padding is done only around the cropped region (same pixels as padding the whole frame, without the copy).
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np
from scipy.signal import medfilt

__all__ = ["CROP_SCALE", "PAD_VALUE", "MEDIAN_KERNEL", "CROP_SIZE", "crop_params", "crop_window", "crop_frame",
           "crop_clip"]

CROP_SCALE = 0.4     # syncnet_python run_pipeline --crop_scale default
PAD_VALUE = 110      # syncnet_python crop_video: numpy.pad(..., constant_values=(110, 110))
MEDIAN_KERNEL = 13   # syncnet_python crop_video: signal.medfilt(..., kernel_size=13)
CROP_SIZE = 224      # SyncNet input size


def crop_params(boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(T, 4) boxes in source pixels -> smoothed (cx, cy, s), each (T,) float64 pixels."""
    boxes = np.asarray(boxes_xyxy, dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or len(boxes) == 0:
        raise ValueError(f"expected (T>0, 4) xyxy boxes, got shape {boxes.shape}")
    if not np.isfinite(boxes).all():
        raise ValueError("face boxes contain NaN or inf; interpolate the track first")
    s = np.maximum(boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    with warnings.catch_warnings():
        # tracks shorter than 13 frames: scipy warns that it zero-pads, which is exactly the original's behaviour
        warnings.simplefilter("ignore", UserWarning)
        return (medfilt(cx, kernel_size=MEDIAN_KERNEL), medfilt(cy, kernel_size=MEDIAN_KERNEL),
                medfilt(s, kernel_size=MEDIAN_KERNEL))


def crop_window(cx: float, cy: float, s: float) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the crop in SOURCE-frame pixels (may lie outside the frame)."""
    bsi = int(s * (1 + 2 * CROP_SCALE))
    my, mx = cy + bsi, cx + bsi
    rows = int(my - s), int(my + s * (1 + 2 * CROP_SCALE))
    cols = int(mx - s * (1 + CROP_SCALE)), int(mx + s * (1 + CROP_SCALE))
    # back to source coordinates: the padded frame is shifted by bsi
    return rows[0] - bsi, rows[1] - bsi, cols[0] - bsi, cols[1] - bsi


def crop_frame(frame: np.ndarray, cx: float, cy: float, s: float, size: int = CROP_SIZE) -> np.ndarray:
    """(H, W, C) uint8 frame -> (size, size, C) uint8 crop (out-of-frame pixels = 110)."""
    r0, r1, c0, c1 = crop_window(cx, cy, s)
    h, w = frame.shape[:2]
    if r1 <= r0 or c1 <= c0:
        raise ValueError(f"empty SyncNet crop for box size s={s:.2f} at ({cx:.1f}, {cy:.1f})")
    out = np.full((r1 - r0, c1 - c0) + frame.shape[2:], PAD_VALUE, dtype=frame.dtype)
    sr0, sr1, sc0, sc1 = max(r0, 0), min(r1, h), max(c0, 0), min(c1, w)
    if sr1 > sr0 and sc1 > sc0:
        out[sr0 - r0:sr1 - r0, sc0 - c0:sc1 - c0] = frame[sr0:sr1, sc0:sc1]
    return cv2.resize(out, (size, size))  # INTER_LINEAR, as the original


def crop_clip(frames: np.ndarray, boxes_xyxy: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """(T, H, W, 3) uint8 frames + (T, 4) track boxes -> (T, size, size, 3) uint8 crops (same channel order)."""
    if len(frames) != len(boxes_xyxy):
        raise ValueError(f"{len(frames)} frames but {len(boxes_xyxy)} face boxes")
    cx, cy, s = crop_params(boxes_xyxy)
    out = np.empty((len(frames), size, size) + frames.shape[3:], dtype=frames.dtype)
    for t, frame in enumerate(frames):
        out[t] = crop_frame(frame, cx[t], cy[t], s[t], size)
    return out
