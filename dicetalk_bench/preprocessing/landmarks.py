"""Optional 68-point FAN landmarks through face-alignment, and random FAN / S3FD weight builders.

face-alignment 1.5.0 only reads FAN weights from the torch.hub cache
(``$TORCH_HOME/hub/checkpoints/2DFAN4-11f355bf06.pth.tar``) and downloads when absent; we therefore
point TORCH_HOME at a folder of hash-checked files (:func:`dicetalk_bench.weights.use_torch_home`), pass the
face boxes we already have (so S3FD is never run), and construct with ``compile=False`` (``torch.compile``
costs ~3 min on a 2-core CPU).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from dicetalk_bench.weights.random_weights import register_random_builder

log = logging.getLogger(__name__)


def write_random_fan(target: Path, seed: int) -> None:
    """Random ``FAN(4)`` state dict saved like the official ``2DFAN4-11f355bf06.pth.tar`` (a plain state dict)."""
    import torch
    from face_alignment.models import FAN

    torch.manual_seed(seed)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    torch.save(FAN(4).state_dict(), target)


def write_random_s3fd(target: Path, seed: int) -> None:
    """Random S3FD state dict saved like the official ``s3fd-619a316812.pth``."""
    import torch
    from face_alignment.detection.sfd.net_s3fd import s3fd

    torch.manual_seed(seed)
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    torch.save(s3fd().state_dict(), target)


class FanLandmarker:
    """68 landmarks per frame from given face boxes. ``device`` None picks CUDA when available."""

    def __init__(self, *, fan_path: str | Path | None = None, s3fd_path: str | Path | None = None,
                 allow_unverified: bool = False, device: str | None = None, compile: bool = False) -> None:
        import torch
        import face_alignment

        from dicetalk_bench import weights

        paths = {k: v for k, v in (("fan-2d", fan_path), ("s3fd", s3fd_path)) if v is not None}
        self.records = [weights.resolve(k, paths.get(k), allow_unverified=allow_unverified).record()
                        for k in ("fan-2d", "s3fd")]
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        with weights.use_torch_home(["fan-2d", "s3fd"], paths=paths, allow_unverified=allow_unverified):
            self._fa = face_alignment.FaceAlignment(
                face_alignment.LandmarksType.TWO_D, device=device, compile=compile, flip_input=False,
            )

    def __call__(self, frame: np.ndarray, box_xyxy: np.ndarray) -> np.ndarray:
        """``frame`` (H, W, 3) uint8 RGB, ``box_xyxy`` (4,) source pixels -> (68, 2) float32 source pixels."""
        return self.batch(np.asarray(frame)[None], np.asarray(box_xyxy)[None], batch_size=1)[0]

    def batch(self, frames: np.ndarray, boxes_xyxy: np.ndarray, batch_size: int = 16) -> np.ndarray:
        """Landmarks for many frames, one face each, one FAN forward per ``batch_size`` crops.

        ``frames`` (T, H, W, 3) uint8 RGB, ``boxes_xyxy`` (T, 4) source pixels -> (T, 68, 2) float32 source
        pixels. Uses face-alignment's own crop rule (centre shifted up by CENTER_Y_OFFSET of the box height,
        scale = (w + h) / reference_scale, 256x256 crop) and its heatmap decoder ``get_preds_fromhm``
        (argmax + quarter-pixel shift toward the higher neighbour, then the inverse crop transform), so the
        result equals ``get_landmarks_from_image(frame, detected_faces=[box])`` frame by frame.
        """
        import torch
        from face_alignment import api as fa_api
        from face_alignment.utils import crop, get_preds_fromhm

        # float64: face-alignment's transform() assigns the scale into a torch tensor and rejects np.float32
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        if len(frames) != len(boxes):
            raise ValueError(f"FAN landmarks: {len(frames)} frames but {len(boxes)} boxes")
        if batch_size < 1:
            raise ValueError(f"FAN landmarks: batch_size must be >= 1, got {batch_size}")
        ref = self._fa.face_detector.reference_scale
        out = np.empty((len(boxes), 68, 2), np.float32)
        for s in range(0, len(boxes), batch_size):
            centers, scales, crops = [], [], []
            for f, d in zip(frames[s:s + batch_size], boxes[s:s + batch_size]):
                c = np.array([d[2] - (d[2] - d[0]) / 2.0, d[3] - (d[3] - d[1]) / 2.0])
                c[1] = c[1] - (d[3] - d[1]) * fa_api.CENTER_Y_OFFSET
                sc = float((d[2] - d[0] + d[3] - d[1]) / ref)
                centers.append(c)
                scales.append(sc)
                crops.append(crop(f, c, sc).transpose((2, 0, 1)).astype(np.float32) / 255.0)
            inp = torch.from_numpy(np.stack(crops)).to(self._fa.device, dtype=self._fa.dtype)
            with torch.no_grad():
                hm = self._fa.face_alignment_net(inp)
            if isinstance(hm, list):
                hm = hm[-1]
            hm = hm.detach().to(device="cpu", dtype=torch.float32).numpy()
            for i in range(len(crops)):
                _, pts_img, _ = get_preds_fromhm(hm[i:i + 1], centers[i], scales[i])
                out[s + i] = np.asarray(pts_img, dtype=np.float32).reshape(68, 2)
        return out

    @property
    def calibrated(self) -> bool:
        return all(r["calibrated"] for r in self.records)

register_random_builder("fan-2d", write_random_fan)
register_random_builder("s3fd", write_random_s3fd)
