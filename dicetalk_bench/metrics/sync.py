"""Sync-C / Sync-D (LSE-C / LSE-D) with SyncNet, following joonson/syncnet_python ``SyncNetInstance.evaluate``.

Maths (identical in all modes):
    min_length = min(n_video_frames, floor(n_audio_samples / 640))      # 25 fps <-> 640 samples <-> 4 MFCC frames
    n_windows = min_length - 5    (the original's count, one fewer than the min_length - 4 that would fit)
    window v: video frames v .. v+4, MFCC frames 4v .. 4v+19 (0.2 s each)
    dists[i, j] = || v_i - a_{i+j-vshift} + 1e-6 ||_2  (torch pairwise_distance; audio padded with zero vectors)
    mean_dists = mean_i dists[i, :]  (2 vshift + 1 values, vshift = 15)
    Sync-D = min(mean_dists); Sync-C = median(mean_dists) - Sync-D; offset = vshift - argmin (frames; the audio
    delayed by k frames relative to the video gives offset -k).

Modes:
    ``parity``   the original evaluate() on given decoded frames (BGR, 0-255, resized to 224 if needed as the Wav2Lip /
                 LatentSync copies do): window copies in batches of 20, the per-frame pdist loop.
    ``fast``     the same windows and maths; the lip CNN runs over the whole clip in chunks overlapping by 4 frames
                 (exact: only its first layer spans time), audio windows by unfold, the distance matrix in one step.
    ``original`` parity after a JPEG encode/decode of every frame, as the original's ``ffmpeg ... %06d.jpg`` dump does
                 (libjpeg through OpenCV; ffmpeg's mjpeg encoder differs, so this reproduces the kind of loss only).
Aggregation over a set (``aggregate_sync``): each video is scored on its one face track (``preprocessing.faces.track``
keeps one face per video; the original scores every track of a scene-cut video), Sync-C and Sync-D are means over
videos, and videos without a face are counted (failures of kind ``no-face``, never silently dropped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal, Mapping, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from dicetalk_bench.errors import NO_FACE, TooShortError
from dicetalk_bench.metrics.mfcc import mfcc
from dicetalk_bench.pcm import float_to_pcm16

__all__ = [
    "VSHIFT", "WINDOW_FRAMES", "MFCC_PER_FRAME", "WINDOW_MFCC", "AUDIO_RATE", "VIDEO_FPS", "SAMPLES_PER_FRAME",
    "SyncEmbedder", "SyncScores", "SyncAggregate", "count_windows", "calc_pdist_loop", "shift_distance_matrix",
    "scores_from_distances", "sync_scores_parity", "sync_scores_fast", "sync_scores_original", "jpeg_round_trip",
    "audio_to_int16", "score_tracked_video", "aggregate_sync",
]

log = logging.getLogger(__name__)

VSHIFT = 15              # demo_syncnet / run_syncnet / Wav2Lip / LatentSync all pass vshift=15
WINDOW_FRAMES = 5        # 0.2 s of video at 25 fps
MFCC_PER_FRAME = 4       # 100 Hz MFCC / 25 fps
WINDOW_MFCC = 20         # 0.2 s of MFCC
AUDIO_RATE = 16000       # ffmpeg -ar 16000 in the original
VIDEO_FPS = 25.0         # the original re-encodes to 25 fps
SAMPLES_PER_FRAME = 640  # 16000 / 25
PARITY_BATCH = 20        # syncnet_python --batch_size default
PDIST_EPS = 1e-6         # torch.nn.functional.pairwise_distance default eps

Mode = Literal["parity", "fast", "original"]


class SyncEmbedder(Protocol):
    """What the sync maths need from a network (``SyncNet`` satisfies it)."""

    def forward_lip(self, lip_windows: torch.Tensor) -> torch.Tensor: ...  # (N, 3, 5, H, W) -> (N, D)
    def forward_aud(self, mfcc_windows: torch.Tensor) -> torch.Tensor: ...  # (N, 1, 13, 20) -> (N, D)
    def lip_clip_embeddings(self, clip: torch.Tensor) -> torch.Tensor: ...  # (1, 3, T, H, W) -> (T - 4, D)


@dataclass(frozen=True)
class SyncScores:
    """Scores of one face track. ``min_dist`` is Sync-D (lower is better), ``confidence`` Sync-C (higher is better)."""

    offset_frames: int
    min_dist: float
    confidence: float
    n_windows: int
    mean_dists: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"sync_c": self.confidence, "sync_d": self.min_dist, "offset_frames": self.offset_frames,
                "n_windows": self.n_windows}


def count_windows(n_video_frames: int, n_audio_samples: int) -> int:
    """Number of windows the original evaluates: ``min(T, floor(S / 640)) - 5`` (may be <= 0)."""
    return min(int(n_video_frames), int(n_audio_samples) // SAMPLES_PER_FRAME) - WINDOW_FRAMES


def _check_windows(n_windows: int, n_frames: int, n_samples: int) -> None:
    if n_windows < 1:
        raise TooShortError(
            f"clip too short for SyncNet: {n_frames} frames and {n_samples} audio samples give {n_windows} windows "
            f"(need min(frames, samples // 640) >= {WINDOW_FRAMES + 1}, i.e. at least 0.24 s at 25 fps)")


def calc_pdist_loop(video_emb: torch.Tensor, audio_emb: torch.Tensor, vshift: int = VSHIFT) -> torch.Tensor:
    """The original's ``calc_pdist`` (a loop over frames), stacked to (N, 2 vshift + 1)."""
    win = 2 * vshift + 1
    padded = F.pad(audio_emb, (0, 0, vshift, vshift))
    rows = [F.pairwise_distance(video_emb[[i], :].repeat(win, 1), padded[i:i + win, :]) for i in range(len(video_emb))]
    return torch.stack(rows, 0)


def shift_distance_matrix(video_emb: torch.Tensor, audio_emb: torch.Tensor, vshift: int = VSHIFT) -> torch.Tensor:
    """Vectorised ``calc_pdist``: (N, D), (N, D) -> (N, 2 vshift + 1) with dists[i, j] = d(v_i, a_{i + j - vshift})."""
    if video_emb.shape != audio_emb.shape:
        raise ValueError(f"video embeddings {tuple(video_emb.shape)} and audio embeddings "
                         f"{tuple(audio_emb.shape)} differ in shape")
    padded = F.pad(audio_emb, (0, 0, vshift, vshift))            # (N + 2v, D)
    shifted = padded.unfold(0, 2 * vshift + 1, 1).transpose(1, 2)  # (N, 2v+1, D) view, no copy
    # rows in blocks so the (rows, 2v+1, D) difference stays ~32 MB for any clip length
    rows = max(1, (8 << 20) // max(1, (2 * vshift + 1) * video_emb.shape[1]))
    return torch.cat([torch.linalg.vector_norm(video_emb[i:i + rows, None, :] - shifted[i:i + rows] + PDIST_EPS,
                                               dim=-1) for i in range(0, len(video_emb), rows)], 0)


def scores_from_distances(dists: torch.Tensor, vshift: int = VSHIFT) -> SyncScores:
    """(N, 2 vshift + 1) distances -> offset, Sync-D (min of the mean) and Sync-C (median - min)."""
    mdist = dists.mean(dim=0)
    minval, minidx = torch.min(mdist, 0)
    conf = torch.median(mdist) - minval  # torch.median: the true median for an odd count (31)
    return SyncScores(offset_frames=int(vshift - int(minidx)), min_dist=float(minval), confidence=float(conf),
                      n_windows=int(dists.shape[0]), mean_dists=tuple(float(x) for x in mdist))


def audio_to_int16(audio: np.ndarray) -> np.ndarray:
    """Mono float [-1, 1] or int16 samples (S,) -> int16 (S,), the scale the original's PCM16 wav read gives
    (:func:`dicetalk_bench.pcm.float_to_pcm16`); ValueError for any other shape."""
    a = np.asarray(audio)
    if a.ndim != 1:
        raise ValueError(f"expected mono (S,) audio, got shape {a.shape}")
    return float_to_pcm16(a)


def _prepare_frames(frames_bgr: np.ndarray, size: int = 224) -> np.ndarray:
    import cv2

    f = np.asarray(frames_bgr)
    if f.ndim != 4 or f.shape[-1] != 3:
        raise ValueError(f"expected (T, H, W, 3) BGR frames, got shape {f.shape}")
    if f.shape[1:3] != (size, size):
        # Wav2Lip / LatentSync copies of evaluate(): cv2.resize(img, (224, 224)), "HARD CODED"
        f = np.stack([cv2.resize(x, (size, size)) for x in f])
    return f


def _mfcc_tensor(audio_int16: np.ndarray) -> torch.Tensor:
    # the original: mfcc (T_a, 13) -> (13, T_a) -> (1, 1, 13, T_a) float32
    return torch.from_numpy(mfcc(audio_int16).T.astype(np.float64)).float()[None, None]


@torch.no_grad()
def sync_scores_parity(model: SyncEmbedder, frames_bgr: np.ndarray, audio: np.ndarray, *, vshift: int = VSHIFT,
                       batch_size: int = PARITY_BATCH, device: str | torch.device = "cpu") -> SyncScores:
    """The original evaluate() on decoded, face-cropped frames.

    Args:
        frames_bgr: (T, H, W, 3) BGR 0-255 (uint8 or float) at 25 fps; resized to 224 x 224 if needed.
        audio: (S,) mono 16 kHz, int16 or float in [-1, 1] (quantised to int16 as a PCM16 wav).
    """
    frames = _prepare_frames(frames_bgr)
    audio16 = audio_to_int16(audio)
    n_win = count_windows(len(frames), len(audio16))
    _check_windows(n_win, len(frames), len(audio16))
    im = torch.from_numpy(np.ascontiguousarray(frames.transpose(3, 0, 1, 2)).astype(np.float32))[None]  # (1,3,T,H,W)
    cct = _mfcc_tensor(audio16)
    im_feat, cc_feat = [], []
    for i in range(0, n_win, batch_size):
        idx = range(i, min(n_win, i + batch_size))
        imtv = torch.cat([im[:, :, v:v + WINDOW_FRAMES] for v in idx], 0).to(device)
        cctv = torch.cat([cct[:, :, :, v * MFCC_PER_FRAME:v * MFCC_PER_FRAME + WINDOW_MFCC] for v in idx], 0).to(device)
        im_feat.append(model.forward_lip(imtv).cpu())
        cc_feat.append(model.forward_aud(cctv).cpu())
    dists = calc_pdist_loop(torch.cat(im_feat, 0), torch.cat(cc_feat, 0), vshift)
    return scores_from_distances(dists, vshift)


@torch.no_grad()
def sync_scores_fast(model: SyncEmbedder, frames_bgr: np.ndarray, audio: np.ndarray, *, vshift: int = VSHIFT,
                     chunk_frames: int = 64, audio_batch: int = 512,
                     device: str | torch.device = "cpu") -> SyncScores:
    """Same numbers as :func:`sync_scores_parity` (to float rounding) without the 5x window copies.

    The lip CNN sees the clip in chunks of ``chunk_frames`` frames overlapping by 4, each giving chunk - 4 windows.
    """
    if chunk_frames <= WINDOW_FRAMES - 1:
        raise ValueError(f"chunk_frames must exceed {WINDOW_FRAMES - 1}, got {chunk_frames}")
    frames = _prepare_frames(frames_bgr)
    audio16 = audio_to_int16(audio)
    n_win = count_windows(len(frames), len(audio16))
    _check_windows(n_win, len(frames), len(audio16))
    step = chunk_frames - (WINDOW_FRAMES - 1)
    lip = []
    for start in range(0, n_win, step):
        stop = min(start + step, n_win) + WINDOW_FRAMES - 1
        chunk = torch.from_numpy(np.ascontiguousarray(frames[start:stop].transpose(3, 0, 1, 2)))
        lip.append(model.lip_clip_embeddings(chunk.to(device=device, dtype=torch.float32)[None]).cpu())
    video_emb = torch.cat(lip, 0)
    cc = _mfcc_tensor(audio16)[0, 0]  # (13, T_a)
    windows = cc.unfold(1, WINDOW_MFCC, MFCC_PER_FRAME)[:, :n_win].permute(1, 0, 2)[:, None]  # (N, 1, 13, 20)
    audio_emb = torch.cat([model.forward_aud(windows[i:i + audio_batch].to(device)).cpu()
                           for i in range(0, n_win, audio_batch)], 0)
    return scores_from_distances(shift_distance_matrix(video_emb, audio_emb, vshift), vshift)


def jpeg_round_trip(frames_bgr: np.ndarray, quality: int = 95) -> np.ndarray:
    """(T, H, W, 3) uint8 -> the same frames after a JPEG encode/decode (OpenCV/libjpeg, ``quality`` 0-100)."""
    import cv2

    out = np.empty_like(frames_bgr)
    for t, f in enumerate(frames_bgr):
        ok, buf = cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError(f"JPEG encoding of frame {t} failed")
        out[t] = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return out


def sync_scores_original(model: SyncEmbedder, frames_bgr: np.ndarray, audio: np.ndarray, *, vshift: int = VSHIFT,
                         jpeg_quality: int = 95, device: str | torch.device = "cpu") -> SyncScores:
    """``parity`` after the original's per-frame JPEG dump (uint8 frames only)."""
    frames = _prepare_frames(np.asarray(frames_bgr))
    if frames.dtype != np.uint8:
        raise ValueError(f"mode 'original' needs uint8 frames for the JPEG round trip, got {frames.dtype}")
    return sync_scores_parity(model, jpeg_round_trip(frames, jpeg_quality), audio, vshift=vshift, device=device)


def score_tracked_video(model: SyncEmbedder, frames_rgb: np.ndarray, audio: np.ndarray, boxes_xyxy: np.ndarray, *,
                        mode: Mode = "fast", vshift: int = VSHIFT, device: str | torch.device = "cpu",
                        jpeg_quality: int = 95) -> SyncScores:
    """Score one face track of a 25 fps video.

    Args:
        frames_rgb: (T, H, W, 3) uint8 RGB full frames (media's convention) at 25 fps.
        audio: (S,) 16 kHz mono, float [-1, 1] or int16, aligned with frame 0.
        boxes_xyxy: (T, 4) face boxes in source pixels (a ``FaceTrack.boxes_xyxy``).
    """
    from dicetalk_bench.metrics.sync_crop import crop_clip

    crops_bgr = crop_clip(np.asarray(frames_rgb), np.asarray(boxes_xyxy))[..., ::-1]
    crops_bgr = np.ascontiguousarray(crops_bgr)
    if mode == "fast":
        return sync_scores_fast(model, crops_bgr, audio, vshift=vshift, device=device)
    if mode == "parity":
        return sync_scores_parity(model, crops_bgr, audio, vshift=vshift, device=device)
    if mode == "original":
        return sync_scores_original(model, crops_bgr, audio, vshift=vshift, jpeg_quality=jpeg_quality, device=device)
    raise ValueError(f"unknown sync mode {mode!r}; expected 'parity', 'fast' or 'original'")


@dataclass(frozen=True)
class SyncAggregate:
    """Set-level Sync-C / Sync-D: mean over videos of each video's track score."""

    sync_c: float
    sync_d: float
    n_videos: int                         # videos with a scored track
    n_without_face: int                   # videos with no face track (failure kind "no-face")
    per_video: Mapping[str, SyncScores] = field(default_factory=dict)
    failures: Mapping[str, str] = field(default_factory=dict)
    failure_kinds: Mapping[str, str] = field(default_factory=dict)


def aggregate_sync(tracks_per_video: Mapping[str, Sequence[SyncScores]], failures: Mapping[str, str] | None = None,
                   failure_kinds: Mapping[str, str] | None = None) -> SyncAggregate:
    """Mean over videos of each video's track score. The scorer passes one track per video; given several, the one
    with most windows is kept (the first on ties).

    A video with an empty track list is a failure of kind ``no-face``; ``failures`` (clip -> reason) and
    ``failure_kinds`` (clip -> one of ``errors.FAILURE_KINDS``) passed in are kept. ``n_without_face`` counts the
    failures of kind ``no-face`` (by kind, never by the wording of a reason).
    """
    failed = dict(failures or {})
    kinds = dict(failure_kinds or {})
    missing = sorted(set(failed) - set(kinds))
    if missing:
        raise ValueError(f"aggregate_sync: failures {missing[:3]} have no failure kind")
    per_video: dict[str, SyncScores] = {}
    for vid, tracks in tracks_per_video.items():
        if not tracks:
            failed.setdefault(vid, "no face track")
            kinds.setdefault(vid, NO_FACE)
            continue
        per_video[vid] = max(tracks, key=lambda s: s.n_windows)
    n_no_face = sum(1 for kind in kinds.values() if kind == NO_FACE)
    if per_video:
        sync_c = float(np.mean([s.confidence for s in per_video.values()]))
        sync_d = float(np.mean([s.min_dist for s in per_video.values()]))
    else:
        sync_c = sync_d = float("nan")
    return SyncAggregate(sync_c=sync_c, sync_d=sync_d, n_videos=len(per_video), n_without_face=n_no_face,
                         per_video=per_video, failures=failed, failure_kinds=kinds)


def score_sync_video(path, model: SyncEmbedder, *, face_track=None, mode: Mode = "fast",
                     device: str | torch.device = "cpu", detector=None, face_config=None) -> SyncScores:
    """Sync scores of one video file: decode once at 25 fps (media), 16 kHz mono audio, one face track, ``mode``.

    ``face_track`` is the stored preprocessing ``FaceTrack`` (indexed by 25 fps frame); without it the face is tracked
    with ``preprocessing.faces.track`` on the decoded frames (``detector`` / ``face_config`` passed through).
    Raises media errors, ``NoFaceError`` (no face) or ``TooShortError`` (too short), each naming the video.
    """
    from dicetalk_bench import media

    video = media.read_video(path, fps=VIDEO_FPS)
    audio = media.read_audio(path, sample_rate=AUDIO_RATE)
    if face_track is None:
        from dicetalk_bench.preprocessing import faces

        face_track = faces.track(video.frames, fps=VIDEO_FPS, config=face_config, detector=detector)
    boxes = np.asarray(face_track.boxes_xyxy)
    if len(boxes) != len(video.frames):
        raise ValueError(f"{path}: face track has {len(boxes)} frames but the video has {len(video.frames)} at "
                         f"{VIDEO_FPS:g} fps; the track must be indexed by 25 fps frame")
    try:
        return score_tracked_video(model, video.frames, audio, boxes, mode=mode, device=device)
    except TooShortError as exc:
        raise TooShortError(f"{path}: {exc}") from exc
