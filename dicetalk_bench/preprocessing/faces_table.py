"""The ``faces/{clip_id}.parquet`` table: one row per output frame (boxes, keypoints, crop affine, mask box, optional
FAN landmarks). Column schema: docs/data_format.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .crop import CropConfig


def faces_table(clip_id: str, track: Any, mats: np.ndarray, crop_cfg: CropConfig, lmk68: np.ndarray | None = None) -> Any:
    """``faces.parquet`` rows (one per output frame); schema in docs/data_format.md."""
    import pyarrow as pa

    from . import crop as cropm
    from .audio_features import _tensor_array

    T = len(track.boxes_xyxy)
    box_crop = cropm.map_boxes(mats, track.boxes_xyxy)
    kps_crop = cropm.apply_affine(mats, track.keypoints)
    mask = cropm.scale_boxes(box_crop, crop_cfg.mask_scale, limit=float(crop_cfg.size))

    def fsl(values: np.ndarray, n: int, typ=pa.float32()) -> pa.Array:
        return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(values, dtype=typ.to_pandas_dtype()).reshape(-1), typ), n)

    cols = {
        "clip_id": pa.array([clip_id] * T, pa.string()),
        "frame": pa.array(np.arange(T, dtype=np.int32)),
        "pts_s": pa.array(np.asarray(track.pts_s if track.pts_s is not None else np.full(T, np.nan), np.float64)),
        "detected": pa.array(track.detected),
        "det_score": pa.array(track.scores.astype(np.float32)),
        "box_raw_src": fsl(track.boxes_raw_xyxy if track.boxes_raw_xyxy is not None else track.boxes_xyxy, 4),
        "box_src": fsl(track.boxes_xyxy, 4),
        "kps_src": _tensor_array(track.keypoints.astype(np.float32), pa.fixed_shape_tensor(pa.float32(), [6, 2])),
        "crop_affine": _tensor_array(mats.astype(np.float64), pa.fixed_shape_tensor(pa.float64(), [2, 3])),
        "box_crop": fsl(box_crop, 4),
        "kps_crop": _tensor_array(kps_crop.astype(np.float32), pa.fixed_shape_tensor(pa.float32(), [6, 2])),
        "mask_box_crop": fsl(mask, 4),
        "box_source": pa.array([getattr(track, "box_source", "blazeface")] * T, pa.string()),
    }
    if lmk68 is not None:
        cols["lmk68_src"] = _tensor_array(lmk68.astype(np.float32), pa.fixed_shape_tensor(pa.float32(), [68, 2]))
        cols["lmk68_crop"] = _tensor_array(cropm.apply_affine(mats, lmk68).astype(np.float32),
                                           pa.fixed_shape_tensor(pa.float32(), [68, 2]))
    return pa.table(cols)
