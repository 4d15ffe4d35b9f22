"""Face tracks: BlazeFace detection every k-th frame, IoU tracking, interpolation, temporal smoothing.

Public API: :func:`track` -> :class:`FaceTrack`, used by the preprocessing pipeline and by the
metrics on generated videos.

Method
1. Detect with the mediapipe Tasks ``FaceDetector`` (BlazeFace; the short-range model for close-ups, the
   full-range sparse model for large frames, where short-range misses faces) on frames
   ``0, k, 2k, ...`` and the last frame.
2. Link detections into tracks greedily by IoU (>= ``iou_threshold``) with each live track's last box; a track
   stays live for ``max_gap_s`` without a match.
3. Keep one track: the one with the largest sum of box areas over its detections (persistent and large wins;
   a passer-by or a small background face loses).
4. Fill the frames between its detections by linear interpolation (boxes and the 6 keypoints); before the
   first / after the last detection the nearest detection is held.
5. Smooth over time with a Savitzky-Golay filter (``scipy.signal.savgol_filter``, polynomial order 2, window
   ``smooth_window_s`` seconds rounded to an odd frame count, ``mode='interp'``) applied to the box centre,
   width, height and to each keypoint coordinate. A Savitzky-Golay filter of order >= 1 reproduces constant
   and linear motion exactly (no lag, unlike an EMA) and reduces frame-to-frame jitter.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import numpy as np

from dicetalk_bench.errors import NO_FACE, ItemFailure

log = logging.getLogger(__name__)

KEYPOINT_NAMES: tuple[str, ...] = ("right_eye", "left_eye", "nose_tip", "mouth_center", "right_ear", "left_ear")


class NoFaceError(ItemFailure, ValueError):
    """No face was found in a video (the message names the video); a per-item failure of kind ``no-face``.

    Also a ValueError, as it was before the shared failure types existed."""

    kind = NO_FACE


@dataclass(frozen=True)
class FaceTrackConfig:
    """Tracking settings.

    model: ``short`` (BlazeFace short range), ``full`` (full range sparse) or ``auto`` (full when the frame's
    shorter side is >= ``full_range_min_side`` pixels). detector_path: explicit ``.tflite`` (else the weights
    registry resolves it). stride: detect every ``stride``-th frame. max_gap_s / smooth_window_s: seconds.
    box_source: the name of the face-box provider in :data:`BOX_SOURCES` (default ``blazeface``; ``model`` and
    ``detector_path`` configure that one); it is recorded with every box (``faces.parquet`` column ``box_source``).
    """

    box_source: str = "blazeface"
    model: Literal["auto", "short", "full"] = "auto"
    detector_path: str | None = None
    min_score: float = 0.5
    stride: int = 5
    iou_threshold: float = 0.3
    max_gap_s: float = 1.0
    smooth_window_s: float = 0.28
    smooth_polyorder: int = 2
    full_range_min_side: int = 720


@dataclass(frozen=True)
class Detection:
    box_xyxy: np.ndarray  # (4,) float32 source pixels
    keypoints: np.ndarray  # (6, 2) float32 source pixels
    score: float


@dataclass(frozen=True)
class FaceTrack:
    """One face over a video. Arrays are indexed by (resampled) frame.

    boxes_xyxy (T, 4) float32 source pixels, smoothed; keypoints (T, 6, 2) float32 source pixels, smoothed
    (order :data:`KEYPOINT_NAMES`); scores (T,) float32 detector score, 0 where interpolated; detected (T,) bool.
    Extra (not in the original contract, defaulted): boxes_raw_xyxy (T, 4) before smoothing (interpolated),
    pts_s (T,) source presentation times, n_tracks (tracks seen), stride (detection stride in frames).
    """

    boxes_xyxy: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray
    detected: np.ndarray
    fps: float
    frame_size: tuple[int, int]  # (W, H)
    boxes_raw_xyxy: np.ndarray | None = None
    pts_s: np.ndarray | None = None
    n_tracks: int = 1
    stride: int = 1
    box_source: str = "blazeface"  # the provider of the boxes (:data:`BOX_SOURCES` name, or "custom")

    def coverage(self) -> float:
        """Fraction of detection frames (every ``stride``-th and the last) on which the face was detected."""
        idx = detection_frames(len(self.detected), self.stride)
        return float(self.detected[idx].mean()) if len(idx) else 0.0


def detection_frames(n_frames: int, stride: int) -> np.ndarray:
    """Indices ``0, k, 2k, ...`` plus the last frame."""
    idx = np.arange(0, n_frames, max(1, stride))
    if n_frames and idx[-1] != n_frames - 1:
        idx = np.append(idx, n_frames - 1)
    return idx


# ------------------------------------------------------------------------------------------------ detector
class BlazeFaceDetector:
    """mediapipe Tasks ``FaceDetector`` in IMAGE mode; ``detect(frame)`` -> list of :class:`Detection`."""

    def __init__(self, model_path: str | Path, min_score: float = 0.5) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        opts = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(model_path)),
            running_mode=vision.RunningMode.IMAGE, min_detection_confidence=min_score,
        )
        self.model_path = Path(model_path)
        self._det = vision.FaceDetector.create_from_options(opts)

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """``frame`` (H, W, 3) uint8 RGB -> detections in source pixels."""
        import mediapipe as mp

        h, w = frame.shape[:2]
        img = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
        out = []
        for d in self._det.detect(img).detections:
            bb = d.bounding_box
            box = np.array([bb.origin_x, bb.origin_y, bb.origin_x + bb.width, bb.origin_y + bb.height], np.float32)
            kps = np.array([[k.x * w, k.y * h] for k in d.keypoints], np.float32).reshape(-1, 2)
            if kps.shape[0] != 6:
                kps = np.tile(((box[:2] + box[2:]) / 2)[None], (6, 1)).astype(np.float32)
            score = float(d.categories[0].score) if d.categories else 0.0
            out.append(Detection(box, kps, score))
        return out

    def close(self) -> None:
        self._det.close()


_DETECTORS: dict[tuple[str, float], BlazeFaceDetector] = {}


def detector_weights_key(config: FaceTrackConfig, frame_size: tuple[int, int]) -> str:
    """Weights-registry key of the BlazeFace model ``config`` uses on frames of ``frame_size`` (W, H)."""
    use_full = config.model == "full" or (config.model == "auto" and min(frame_size) >= config.full_range_min_side)
    return "blazeface-full" if use_full else "blazeface-short"


@dataclass(frozen=True)
class BoxSource:
    """A face-box provider: ``make(config, frame_size)`` returns an object with ``detect(frame (H, W, 3) uint8 RGB)
    -> list[Detection]`` in source pixels; ``weights_keys(config)`` names the weights-registry keys it loads (so a
    run can check them before it starts)."""

    name: str
    make: Any
    weights_keys: Any
    description: str = ""


def _blazeface_keys(config: FaceTrackConfig) -> tuple[str, ...]:
    if config.detector_path is not None:
        return ()
    return {"short": ("blazeface-short",), "full": ("blazeface-full",)}.get(config.model,
                                                                           ("blazeface-short", "blazeface-full"))


#: Face-box providers by name. BlazeFace (mediapipe) is the default; the DICE-Talk release uses YOLOv5m-face, which
#: a user can add with :func:`register_box_source` (any detector with the ``detect`` contract above).
BOX_SOURCES: dict[str, BoxSource] = {}


def register_box_source(source: BoxSource, *, replace: bool = False) -> None:
    """Add a face-box provider; a name already taken is refused unless ``replace``."""
    if source.name in BOX_SOURCES and not replace:
        raise ValueError(f"face box source {source.name!r} is already registered")
    BOX_SOURCES[source.name] = source


def box_source(name: str) -> BoxSource:
    """The provider called ``name``; an unknown name raises ValueError listing the known ones."""
    if name not in BOX_SOURCES:
        raise ValueError(f"face box source {name!r} is not registered; known: {', '.join(sorted(BOX_SOURCES))} "
                         "(set faces.box_source, or register one with preprocessing.faces.register_box_source)")
    return BOX_SOURCES[name]


def detector_for(config: FaceTrackConfig, frame_size: tuple[int, int]) -> Any:
    """The (per-process cached) detector of ``config.box_source`` for a frame size (W, H)."""
    return box_source(config.box_source).make(config, frame_size)


def blazeface_for(config: FaceTrackConfig, frame_size: tuple[int, int]) -> BlazeFaceDetector:
    """The (per-process cached) BlazeFace detector for ``config`` and a frame size (W, H)."""
    if config.detector_path is not None:
        path = str(config.detector_path)
    else:
        from dicetalk_bench import weights

        path = str(weights.resolve(detector_weights_key(config, frame_size)).path)
    key = (path, config.min_score)
    if key not in _DETECTORS:
        _DETECTORS[key] = BlazeFaceDetector(path, config.min_score)
    return _DETECTORS[key]


register_box_source(BoxSource("blazeface", blazeface_for, _blazeface_keys,
                              "mediapipe BlazeFace short/full range (weights blazeface-short / blazeface-full)"))


# ------------------------------------------------------------------------------------------------ maths
def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between (N, 4) and (M, 4) xyxy boxes -> (N, M)."""
    a = np.asarray(a, np.float64)[:, None]
    b = np.asarray(b, np.float64)[None]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = lambda x: np.clip(x[..., 2] - x[..., 0], 0, None) * np.clip(x[..., 3] - x[..., 1], 0, None)  # noqa: E731
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclass
class _Track:
    frames: list[int] = field(default_factory=list)
    dets: list[Detection] = field(default_factory=list)

    @property
    def last_box(self) -> np.ndarray:
        return self.dets[-1].box_xyxy

    def total_area(self) -> float:
        return float(sum((d.box_xyxy[2] - d.box_xyxy[0]) * (d.box_xyxy[3] - d.box_xyxy[1]) for d in self.dets))


def link_tracks(detections: Sequence[tuple[int, Sequence[Detection]]], iou_threshold: float, max_gap_frames: int) -> list[_Track]:
    """Greedy IoU association of per-frame detections ``[(frame, [Detection, ...]), ...]`` (frames ascending)."""
    tracks: list[_Track] = []
    for t, dets in detections:
        live = [tr for tr in tracks if t - tr.frames[-1] <= max_gap_frames]
        free = list(range(len(dets)))
        if live and dets:
            m = iou(np.stack([d.box_xyxy for d in dets]), np.stack([tr.last_box for tr in live]))
            used_t: set[int] = set()
            for flat in np.argsort(-m, axis=None):
                i, j = np.unravel_index(flat, m.shape)
                if m[i, j] < iou_threshold:
                    break
                if i in free and j not in used_t:
                    live[j].frames.append(t)
                    live[j].dets.append(dets[i])
                    free.remove(i)
                    used_t.add(j)
        for i in free:
            tracks.append(_Track([t], [dets[i]]))
    return tracks


def interpolate(frames: Sequence[int], values: np.ndarray, n_frames: int) -> np.ndarray:
    """Linear interpolation of (K, ...) values given at ``frames`` onto 0..n_frames-1 (ends held)."""
    v = np.asarray(values, np.float64).reshape(len(frames), -1)
    grid = np.arange(n_frames)
    out = np.stack([np.interp(grid, frames, v[:, c]) for c in range(v.shape[1])], axis=1)
    return out.reshape((n_frames,) + np.asarray(values).shape[1:])


def smoothing_window(n_frames: int, fps: float, window_s: float, polyorder: int) -> int:
    """Odd Savitzky-Golay window in frames (<= n_frames); 0 means too short to smooth."""
    w = int(round(window_s * fps))
    w = min(w, n_frames)
    if w % 2 == 0:
        w -= 1
    return w if w > polyorder + 1 else 0


def smooth_track(boxes_xyxy: np.ndarray, keypoints: np.ndarray, window: int, polyorder: int) -> tuple[np.ndarray, np.ndarray]:
    """Savitzky-Golay smoothing along time of box centre/size and keypoints; (T, 4), (T, 6, 2) in and out."""
    from scipy.signal import savgol_filter

    b = np.asarray(boxes_xyxy, np.float64)
    k = np.asarray(keypoints, np.float64)
    if window == 0:
        return b.astype(np.float32), k.astype(np.float32)
    cxcywh = np.stack([(b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2, b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], 1)
    s = savgol_filter(cxcywh, window, polyorder, axis=0, mode="interp")
    boxes = np.stack([s[:, 0] - s[:, 2] / 2, s[:, 1] - s[:, 3] / 2, s[:, 0] + s[:, 2] / 2, s[:, 1] + s[:, 3] / 2], 1)
    kps = savgol_filter(k, window, polyorder, axis=0, mode="interp")
    return boxes.astype(np.float32), kps.astype(np.float32)


def build_track(detections: Sequence[tuple[int, Sequence[Detection]]], n_frames: int, fps: float,
                frame_size: tuple[int, int], config: FaceTrackConfig, name: str = "video",
                pts_s: np.ndarray | None = None) -> FaceTrack:
    """Steps 2-5 of the module docstring on per-frame detections (pure; no detector involved). The track records
    ``config.box_source`` as the provider of its boxes."""
    max_gap = max(1, int(round(config.max_gap_s * fps)))
    tracks = link_tracks(detections, config.iou_threshold, max_gap)
    if not tracks:
        n_checked = len(detections)
        raise NoFaceError(f"{name}: no face found on any of the {n_checked} frames checked (every {config.stride} frames "
                          f"of {n_frames}; min score {config.min_score})")
    best = max(tracks, key=lambda tr: tr.total_area())
    boxes_raw = interpolate(best.frames, np.stack([d.box_xyxy for d in best.dets]), n_frames)
    kps_raw = interpolate(best.frames, np.stack([d.keypoints for d in best.dets]), n_frames)
    window = smoothing_window(n_frames, fps, config.smooth_window_s, config.smooth_polyorder)
    boxes, kps = smooth_track(boxes_raw, kps_raw, window, config.smooth_polyorder)
    scores = np.zeros(n_frames, np.float32)
    detected = np.zeros(n_frames, bool)
    for t, d in zip(best.frames, best.dets):
        scores[t] = d.score
        detected[t] = True
    return FaceTrack(boxes, kps, scores, detected, float(fps), frame_size, boxes_raw.astype(np.float32),
                     pts_s, n_tracks=len(tracks), stride=config.stride, box_source=config.box_source)


# ------------------------------------------------------------------------------------------------ public
def _chunks(video: Any, fps: float | None) -> tuple[Iterator[Any], float, str]:
    if isinstance(video, np.ndarray):
        if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            raise ValueError(f"video array must be (T, H, W, 3) uint8, got {video.shape} {video.dtype}")
        from types import SimpleNamespace

        rate = float(fps) if fps else 25.0
        chunk = SimpleNamespace(frames=video, pts_s=np.arange(len(video)) / rate, start_index=0)
        return iter([chunk]), rate, "video array"
    from dicetalk_bench import media

    path = Path(video)
    rate = float(fps) if fps else float(media.probe(path).fps or 25.0)
    return media.iter_video(path, chunk_frames=32, fps=fps), rate, str(path)


def detect_frames(chunks: Iterator[Any], config: FaceTrackConfig, detector: Any = None
                  ) -> tuple[list[tuple[int, list[Detection]]], int, tuple[int, int], np.ndarray]:
    """Run the detector on every ``stride``-th frame and the last one of a chunk stream.

    Returns (per-frame detections, number of frames, frame size (W, H), pts_s (T,)).
    """
    dets: list[tuple[int, list[Detection]]] = []
    pts: list[np.ndarray] = []
    n = 0
    size = (0, 0)
    last: tuple[int, np.ndarray] | None = None
    for chunk in chunks:
        frames = chunk.frames
        size = (int(frames.shape[2]), int(frames.shape[1]))
        if detector is None:
            detector = detector_for(config, size)
        for i in range(len(frames)):
            t = n + i
            if t % config.stride == 0:
                dets.append((t, detector.detect(frames[i])))
        n += len(frames)
        pts.append(np.asarray(chunk.pts_s, np.float64))
        last = (n - 1, frames[-1].copy()) if len(frames) else last
    if last is not None and (last[0] % config.stride) != 0:
        dets.append((last[0], detector.detect(last[1])))
    return dets, n, size, (np.concatenate(pts) if pts else np.zeros(0))


def track(video: Any, *, fps: float | None = None, config: FaceTrackConfig | None = None,
          detector: Any = None) -> FaceTrack:
    """Track the main face of ``video`` (a path, streamed, or a (T, H, W, 3) uint8 RGB array).

    With a path and ``fps`` the video is resampled to ``fps`` (media.iter_video) and the track is indexed by
    output frame; without ``fps`` the source frames are used. An array is taken as is at ``fps`` (default 25).
    ``detector`` (anything with ``detect(frame) -> list[Detection]``) replaces BlazeFace, e.g. in tests.
    Raises :class:`NoFaceError` naming the video when no face is found.
    """
    config = config or FaceTrackConfig()
    source = config.box_source if detector is None else str(getattr(detector, "box_source", "custom"))
    if detector is None:
        box_source(config.box_source)  # an unknown provider is refused before any frame is decoded
    chunks, rate, name = _chunks(video, fps)
    dets, n, size, pts = detect_frames(chunks, config, detector)
    if n == 0:
        raise NoFaceError(f"{name}: no frames to search for a face")
    return dataclasses.replace(build_track(dets, n, rate, size, config, name=name, pts_s=pts), box_source=source)
