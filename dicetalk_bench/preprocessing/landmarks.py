"""Optional 68-point FAN landmarks through face-alignment, and random FAN / S3FD weight builders.

face-alignment 1.5.0 only reads FAN weights from the torch.hub cache
(``$TORCH_HOME/hub/checkpoints/2DFAN4-11f355bf06.pth.tar``) and downloads when absent; we therefore
point TORCH_HOME at a folder of hash-checked files (:func:`dicetalk_bench.weights.use_torch_home`), pass the
face boxes we already have (so S3FD is never run), and construct with ``compile=False`` (``torch.compile``
costs ~3 min on a 2-core CPU; datasets reference §3).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

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
        out = self._fa.get_landmarks_from_image(frame, detected_faces=[np.asarray(box_xyxy, dtype=np.float32)])
        if not out:
            return np.full((68, 2), np.nan, dtype=np.float32)
        return np.asarray(out[0], dtype=np.float32)[:, :2]

    @property
    def calibrated(self) -> bool:
        return all(r["calibrated"] for r in self.records)


def try_fan(**kwargs: Any) -> FanLandmarker | None:
    """A :class:`FanLandmarker` when its weights resolve, else None (logged); landmarks are optional."""
    from dicetalk_bench.weights import WeightsError

    try:
        return FanLandmarker(**kwargs)
    except WeightsError as exc:
        log.info("FAN landmarks skipped: %s", exc)
        return None
