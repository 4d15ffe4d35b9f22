"""Video and audio I/O: the only module of dicetalk_bench that touches PyAV.

Reading:
- :func:`probe` reads container metadata without decoding.
- :func:`iter_video` streams ``(N, H, W, 3) uint8`` RGB chunks with their source presentation times
  (seconds), optionally resampled to a constant frame rate the way FFmpeg's ``fps`` filter
  (``ffmpeg -r``) does; :func:`read_video` collects it into one array (``max_frames``: only the first N);
  :func:`read_frames_at` keeps only chosen frame indices and counts the rest, in bounded memory.
- :func:`read_audio` decodes the first audio stream to ``(S,) float32`` mono at a requested rate.

Writing: :class:`VideoWriter` / :func:`write_video` (H.264 yuv420p + AAC mp4, atomic rename on
success) and :func:`write_audio` (``.wav`` PCM16 or ``.m4a`` AAC).

Every failure is a :class:`MediaError` subclass whose message names the file and the problem.
The frame-rate resampling rule is documented in :func:`resample_indices` and ``docs/media.md``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import av.error
import numpy as np

from dicetalk_bench.fileutil import atomic_path
from dicetalk_bench.pcm import float_to_pcm16

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike

# Slack on the "declared N frames but decoded M" check: one frame, or 1 % of long clips, because edit
# lists may legitimately hide a frame or two of the stored samples.
_TRUNCATION_SLACK_FRAC = 0.01
# Floating-point slack when rounding a timestamp onto the output grid; timestamps are rationals
# (pts * time_base), so a product such as 0.3 * 25 may land a hair below an exact half.
_SLOT_EPS = 1e-6
# Audio may end this much before its declared duration without being called truncated: one video frame
# at 25 fps, the tolerance callers are promised for audio length.
_AUDIO_TRUNCATION_SLACK_S = 0.04
# AAC frame size (ISO/IEC 14496-3: 1024 samples per frame); used to chunk audio for the encoders.
_AUDIO_CHUNK = 1024


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------
class MediaError(Exception):
    """Base class of media errors; ``.path`` is the file, ``str()`` names the path and the problem."""

    def __init__(self, path: PathLike, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class MediaNotFoundError(MediaError):
    """The file does not exist."""


class EmptyMediaError(MediaError):
    """Zero-length file, or a stream without any decodable frame / sample."""


class CorruptMediaError(MediaError):
    """The file cannot be opened or decoded, or is truncated."""


class MissingStreamError(MediaError):
    """No video stream, or no audio stream where audio is required."""


class NoAudioError(MissingStreamError):
    """No audio stream where audio is required (a per-item failure of kind ``no-audio``)."""


class EmptyAudioError(EmptyMediaError):
    """An audio stream that decodes to no samples (a per-item failure of kind ``no-audio``)."""


class MediaWriteError(MediaError):
    """Writing failed (unwritable folder, bad frame size, encoder error)."""


# --------------------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MediaInfo:
    """Container metadata as declared by the file (nothing is decoded).

    ``duration_s`` is the container duration in seconds (0.0 when unknown); ``n_frames`` is the
    declared frame count of the first video stream (None when the container does not store it).
    """

    path: Path
    duration_s: float
    has_video: bool
    fps: float | None
    n_frames: int | None
    width: int | None
    height: int | None
    has_audio: bool
    audio_rate: int | None
    audio_channels: int | None
    video_codec: str | None
    audio_codec: str | None


@dataclass(frozen=True)
class FrameChunk:
    """A run of consecutive frames from :func:`iter_video`.

    frames: (N, H, W, 3) uint8 RGB.
    pts_s: (N,) float64 source presentation times in seconds (with resampling: the source pts of the
        frame chosen for each output slot, so duplicates repeat a value).
    start_index: index of ``frames[0]`` in the (resampled) output stream.
    """

    frames: np.ndarray
    pts_s: np.ndarray
    start_index: int


@dataclass(frozen=True)
class SelectedFrames:
    """Chosen frames of a clip from :func:`read_frames_at`.

    frames: (K, H, W, 3) uint8 RGB, the frames at ``indices`` in increasing index order.
    indices: (K,) int64 sorted unique frame indices that exist in the stream (requested ones beyond its end are
        left out).
    n_frames: number of frames of the whole (resampled) stream, all of which were decoded.
    """

    frames: np.ndarray
    indices: np.ndarray
    n_frames: int


@dataclass(frozen=True)
class Video:
    """A fully decoded clip: frames (T, H, W, 3) uint8 RGB, fps (frames per second), pts_s (T,) float64 s."""

    frames: np.ndarray
    fps: float
    pts_s: np.ndarray


# --------------------------------------------------------------------------------------------------
# Opening and probing
# --------------------------------------------------------------------------------------------------
def _check_readable(path: PathLike) -> Path:
    path = Path(path)
    if not path.exists():
        raise MediaNotFoundError(path, "file does not exist")
    if not path.is_file():
        raise MediaNotFoundError(path, "is not a regular file")
    if path.stat().st_size == 0:
        raise EmptyMediaError(path, "file is empty (0 bytes)")
    return path


def _open(path: PathLike) -> tuple[Path, av.container.InputContainer]:
    path = _check_readable(path)
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError as exc:
        raise CorruptMediaError(path, f"cannot open as a media file ({exc.strerror or exc})") from exc
    except OSError as exc:
        raise CorruptMediaError(path, f"cannot open: {exc}") from exc
    if not container.streams.video and not container.streams.audio:
        container.close()
        # a valid container with nothing to decode (e.g. an mp4 whose writer stopped before any frame)
        raise EmptyMediaError(path, "container holds no video or audio stream with data")
    return path, container


def _stream_fps(stream: av.video.stream.VideoStream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return float(rate)
    return None


def probe(path: PathLike) -> MediaInfo:
    """Read container metadata of ``path`` (no decoding). Raises a :class:`MediaError` subclass."""
    path, container = _open(path)
    with container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        duration_s = container.duration / av.time_base if container.duration else 0.0
        if not duration_s:
            for stream in (video, audio):
                if stream is not None and stream.duration and stream.time_base:
                    duration_s = max(duration_s, float(stream.duration * stream.time_base))
        return MediaInfo(
            path=path,
            duration_s=float(duration_s),
            has_video=video is not None,
            fps=_stream_fps(video) if video is not None else None,
            n_frames=(int(video.frames) or None) if video is not None else None,
            width=int(video.codec_context.width) if video is not None else None,
            height=int(video.codec_context.height) if video is not None else None,
            has_audio=audio is not None,
            audio_rate=int(audio.codec_context.sample_rate) if audio is not None else None,
            audio_channels=int(audio.codec_context.channels) if audio is not None else None,
            video_codec=video.codec_context.name if video is not None else None,
            audio_codec=audio.codec_context.name if audio is not None else None,
        )


# --------------------------------------------------------------------------------------------------
# Frame-rate resampling (pure)
# --------------------------------------------------------------------------------------------------
def _round_half_up(x: np.ndarray | float) -> np.ndarray:
    """Round to nearest, halves away from zero for the non-negative times used here (FFmpeg
    AV_ROUND_NEAR_INF, the ``fps`` filter's default ``round=near``)."""
    return np.floor(np.asarray(x, dtype=np.float64) + 0.5 + _SLOT_EPS).astype(np.int64)


def _n_output_frames(duration_s: float, target_fps: float) -> int:
    # fps filter: the end-of-stream time is rounded onto the output grid with the same rounding;
    # we keep at least one frame so a very short clip never vanishes silently.
    return max(1, int(_round_half_up(duration_s * target_fps)))


def resample_indices(pts_s: np.ndarray, target_fps: float, duration_s: float) -> np.ndarray:
    """Source frame index for each output frame of a constant-rate ``target_fps`` stream.

    Rule (FFmpeg ``fps`` filter, default ``round=near``, which ``ffmpeg -r`` applies): times are
    measured from the first frame, ``t_i = pts_s[i] - pts_s[0]``. Each source frame is placed on the
    output grid at slot ``r_i = round(t_i * target_fps)`` (halves round up). Output frame ``k``
    (standing for time ``k / target_fps``) shows the LAST source frame with ``r_i <= k``; equivalently
    the last frame with ``t_i < (k + 0.5) / target_fps``. Frames superseded before their slot are
    dropped, frames spanning several slots are duplicated. The output has
    ``round(duration_s * target_fps)`` frames (at least 1). Relative times match the ``ffmpeg`` command
    line (which shifts inputs to start at 0); FFmpeg's bare filter on absolute pts can differ by one
    frame at a slot boundary when ``pts_s[0]`` is not a multiple of ``1 / target_fps``.

    pts_s: (N,) source presentation times in seconds, non-decreasing.
    target_fps: output frame rate (frames per second), > 0.
    duration_s: source length in seconds measured from ``pts_s[0]`` (last pts + last frame's
        duration - first pts).
    Returns (round(duration_s * target_fps),) int64 indices into ``pts_s``.
    """
    pts = np.asarray(pts_s, dtype=np.float64)
    if pts.ndim != 1 or pts.size == 0:
        raise ValueError(f"pts_s must be a non-empty 1-D array, got shape {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise ValueError("pts_s contains non-finite values")
    if np.any(np.diff(pts) < 0):
        raise ValueError("pts_s must be non-decreasing (presentation order)")
    if not (target_fps > 0 and math.isfinite(target_fps)):
        raise ValueError(f"target_fps must be a positive number, got {target_fps!r}")
    if not (duration_s >= 0 and math.isfinite(duration_s)):
        raise ValueError(f"duration_s must be a non-negative number, got {duration_s!r}")
    slots = _round_half_up((pts - pts[0]) * target_fps)
    n_out = _n_output_frames(duration_s, target_fps)
    k = np.arange(n_out, dtype=np.int64)
    return np.searchsorted(slots, k, side="right").astype(np.int64) - 1


# --------------------------------------------------------------------------------------------------
# Video reading
# --------------------------------------------------------------------------------------------------
class _ChunkBuffer:
    """Fills fixed-size chunks of frames and hands them out as FrameChunk objects."""

    def __init__(self, chunk_frames: int) -> None:
        self.chunk_frames = chunk_frames
        self.frames: np.ndarray | None = None
        self.pts = np.empty(chunk_frames, dtype=np.float64)
        self.n = 0
        self.start_index = 0

    def add(self, frame: np.ndarray, pts_s: float) -> FrameChunk | None:
        if self.frames is None:
            self.frames = np.empty((self.chunk_frames, *frame.shape), dtype=np.uint8)
        self.frames[self.n] = frame
        self.pts[self.n] = pts_s
        self.n += 1
        return self.flush() if self.n == self.chunk_frames else None

    def flush(self) -> FrameChunk | None:
        if self.n == 0 or self.frames is None:
            return None
        # hand the filled array over instead of copying it (a copy of a 32-frame 1080p chunk costs as much
        # as decoding it); the next chunk gets a fresh array
        chunk = FrameChunk(self.frames[: self.n], self.pts[: self.n].copy(), self.start_index)
        self.frames = None
        self.start_index += self.n
        self.n = 0
        return chunk


def _frame_time_s(frame: av.VideoFrame, index: int, fps: float | None) -> float:
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base)
    # No timestamp (rare raw streams): fall back to the nominal grid.
    return index / fps if fps else float(index)


def _frame_duration_s(frame: av.VideoFrame, fps: float | None) -> float:
    duration = getattr(frame, "duration", None)
    if duration and frame.time_base is not None:
        return float(duration * frame.time_base)
    return 1.0 / fps if fps else 0.0


def iter_video(path: PathLike, chunk_frames: int = 64, fps: float | None = None,
               threads: int | None = None) -> Iterator[FrameChunk]:
    """Stream the first video stream of ``path`` as chunks of at most ``chunk_frames`` frames.

    Only one chunk (plus one decoded frame) is held at a time, so long 1080p files stream in bounded
    memory. With ``fps`` the output is resampled to a constant rate by :func:`resample_indices`'s rule
    (output frame k stands for time pts_0 + k / fps); ``pts_s`` then holds the source pts of the
    chosen frames.

    The file is opened when this function is called, so a missing, empty, unreadable or video-less
    file raises here (MediaNotFoundError / EmptyMediaError / CorruptMediaError / MissingStreamError),
    not at the first ``next()``. Problems found while decoding raise CorruptMediaError from the
    iterator: a decoder error, a frame-size change, or fewer decoded frames than the container
    declares (beyond max(1 frame, 1 %) slack; raised after the decoded chunks were yielded).
    EmptyMediaError is raised when the stream decodes to no frame at all.
    ``threads``: decoder threads (None: FFmpeg's automatic count; 1 in single-threaded Dask workers).
    Decoding is exact, so the frames do not depend on it.
    """
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number or None, got {fps!r}")
    path, container = _open(path)
    if not container.streams.video:
        container.close()
        raise MissingStreamError(path, "has no video stream")
    return _iter_video_frames(path, container, chunk_frames, fps, threads)


def _iter_video_frames(path: Path, container: av.container.InputContainer, chunk_frames: int,
                       fps: float | None, threads: int | None = None) -> Iterator[FrameChunk]:
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads: decoding dominates the cost
        if threads is not None:
            stream.codec_context.thread_count = int(threads)
        declared_frames = int(stream.frames) if stream.frames else None
        nominal_fps = _stream_fps(stream)
        buffer = _ChunkBuffer(chunk_frames)

        n_decoded = 0
        first_pts: float | None = None
        first_shape: tuple[int, ...] | None = None
        # Resampling state: the pending source frame and its pts; the next output slot to fill.
        pending: tuple[np.ndarray, float] | None = None
        next_slot = 0
        last_end_s = 0.0
        try:
            for frame in container.decode(stream):
                rgb = frame.to_ndarray(format="rgb24")
                if first_shape is None:
                    first_shape = rgb.shape
                elif rgb.shape != first_shape:
                    raise CorruptMediaError(path, f"frame size changed from {first_shape[1]}x{first_shape[0]} to "
                                                  f"{rgb.shape[1]}x{rgb.shape[0]} (WxH) at frame {n_decoded}")
                t = _frame_time_s(frame, n_decoded, nominal_fps)
                n_decoded += 1
                last_end_s = t + _frame_duration_s(frame, nominal_fps)
                if fps is None:
                    chunk = buffer.add(rgb, t)
                    if chunk is not None:
                        yield chunk
                    continue
                if first_pts is None:
                    first_pts = t
                slot = int(_round_half_up((t - first_pts) * fps))
                if pending is not None:
                    # the pending frame fills every slot before the new frame's slot (none if superseded)
                    for _ in range(next_slot, slot):
                        chunk = buffer.add(*pending)
                        if chunk is not None:
                            yield chunk
                    next_slot = max(next_slot, slot)
                pending = (rgb, t)
        except av.error.FFmpegError as exc:
            raise CorruptMediaError(path, f"decoding failed after {n_decoded} frames ({exc.strerror or exc})") from exc

        if n_decoded == 0:
            raise EmptyMediaError(path, "video stream has no decodable frames")
        if fps is not None and pending is not None and first_pts is not None:
            n_out = _n_output_frames(last_end_s - first_pts, fps)
            for _ in range(next_slot, n_out):
                chunk = buffer.add(*pending)
                if chunk is not None:
                    yield chunk
        chunk = buffer.flush()
        if chunk is not None:
            yield chunk
        if declared_frames is not None:
            slack = max(1, int(declared_frames * _TRUNCATION_SLACK_FRAC))
            if n_decoded < declared_frames - slack:
                declared_s = float(stream.duration * stream.time_base) if stream.duration else float("nan")
                raise CorruptMediaError(
                    path,
                    f"truncated: container declares {declared_frames} frames / {declared_s:.3f} s "
                    f"but only {n_decoded} decoded",
                )


def read_video(path: PathLike, fps: float | None = None, max_frames: int | None = None) -> Video:
    """Decode ``path`` to a :class:`Video` (frames (T, H, W, 3) uint8 RGB, pts_s (T,) seconds).

    fps: resample to this constant rate (see :func:`resample_indices`); None keeps the source frames
        and reports the stream's average rate.
    max_frames: stop after this many (output) frames; the truncation check is then skipped.
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1 or None, got {max_frames}")
    out_fps = fps
    if out_fps is None:
        out_fps = probe(path).fps or 0.0
    frames: list[np.ndarray] = []
    pts: list[np.ndarray] = []
    n = 0
    chunk_frames = 64 if max_frames is None else min(64, max_frames)
    gen = iter_video(path, chunk_frames=chunk_frames, fps=fps)
    try:
        for chunk in gen:
            take = chunk.frames if max_frames is None else chunk.frames[: max_frames - n]
            frames.append(take)
            pts.append(chunk.pts_s[: len(take)])
            n += len(take)
            if max_frames is not None and n >= max_frames:
                break
    finally:
        gen.close()
    return Video(frames=np.concatenate(frames, axis=0), fps=float(out_fps), pts_s=np.concatenate(pts))


def read_frames_at(path: PathLike, indices: np.ndarray | list[int], fps: float | None = None,
                   chunk_frames: int = 16) -> SelectedFrames:
    """Decode the whole video stream of ``path`` but keep only the frames at ``indices``.

    Memory is bounded by one chunk of ``chunk_frames`` frames plus the K kept frames, whatever the clip's length:
    the way to take a few fixed-length windows (FVD clips) out of a long video. Every frame is decoded, so
    ``n_frames`` is the stream's true length and every check of :func:`iter_video` applies (a truncated file
    raises CorruptMediaError after the last frame). The kept frames are the same arrays :func:`read_video` would
    return at those positions.

    indices: frame indices (any order, duplicates allowed; >= 0). Indices at or beyond the end are left out of the
        result (compare ``result.indices``); an empty list just counts the frames.
    fps: resample first (see :func:`iter_video`); indices then refer to the resampled stream.
    """
    want = np.unique(np.asarray(indices, dtype=np.int64).reshape(-1))
    if want.size and want[0] < 0:
        raise ValueError(f"frame indices must be >= 0, got {int(want[0])}")
    kept: np.ndarray | None = None
    frame_shape: tuple[int, ...] = (0, 0, 3)
    n = 0
    for chunk in iter_video(path, chunk_frames=chunk_frames, fps=fps):
        lo, hi = chunk.start_index, chunk.start_index + len(chunk.frames)
        frame_shape = chunk.frames.shape[1:]
        sel = want[(want >= lo) & (want < hi)]
        if sel.size:
            if kept is None:
                kept = np.empty((want.size, *frame_shape), dtype=np.uint8)
            kept[np.searchsorted(want, sel)] = chunk.frames[sel - lo]
        n = hi
    found = want[want < n]
    frames = kept[: found.size] if kept is not None else np.zeros((0, *frame_shape), dtype=np.uint8)
    return SelectedFrames(frames=frames, indices=found, n_frames=n)


# --------------------------------------------------------------------------------------------------
# Audio
# --------------------------------------------------------------------------------------------------
def _resample_frames(frames: Iterator[av.AudioFrame], rate_out: int) -> np.ndarray:
    """Resample decoded audio frames to ``rate_out`` keeping the channel layout, then average the
    channels (an explicit mean, independent of libswresample's downmix matrix). Returns (S,) float32."""
    resampler: av.AudioResampler | None = None
    layout: str | None = None
    pieces: list[np.ndarray] = []
    for frame in frames:
        if resampler is None or frame.layout.name != layout:
            if resampler is not None:
                pieces.extend(f.to_ndarray().mean(axis=0) for f in resampler.resample(None))
            layout = frame.layout.name
            resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate_out)
        pieces.extend(f.to_ndarray().mean(axis=0) for f in resampler.resample(frame))
    if resampler is not None:
        # flush: the resampler holds a filter delay's worth of samples until told the input ended
        pieces.extend(f.to_ndarray().mean(axis=0) for f in resampler.resample(None))
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(pieces).astype(np.float32, copy=False)


def read_audio(path: PathLike, sample_rate: int = 16000) -> np.ndarray:
    """Decode the first audio stream of ``path`` (mp4, avi, m4a, wav, ...) to mono.

    Returns (S,) float32 in [-1, 1] at ``sample_rate`` Hz: the mean of the channels, resampled with
    FFmpeg's resampler. Encoder padding after the declared stream end (AAC pads its last frame) is cut,
    so S is within one sample block of ``duration * sample_rate``.
    Raises NoAudioError (a MissingStreamError) if there is no audio stream, EmptyAudioError (an
    EmptyMediaError) if it decodes to nothing,
    CorruptMediaError on a decoder error or when the decoded audio is shorter than the stream declares
    (beyond max(40 ms, 1 %)).
    """
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    path, container = _open(path)
    with container:
        if not container.streams.audio:
            raise NoAudioError(path, "has no audio stream (read_audio needs one)")
        stream = container.streams.audio[0]
        declared_s = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        try:
            samples = _resample_frames(container.decode(stream), sample_rate)
        except av.error.FFmpegError as exc:
            raise CorruptMediaError(path, f"audio decoding failed ({exc.strerror or exc})") from exc
    if samples.size == 0:
        raise EmptyAudioError(path, "audio stream has no decodable samples")
    if declared_s is not None:
        decoded_s = samples.size / sample_rate
        if decoded_s < declared_s - max(_AUDIO_TRUNCATION_SLACK_S, _TRUNCATION_SLACK_FRAC * declared_s):
            raise CorruptMediaError(
                path, f"truncated: audio stream declares {declared_s:.3f} s but only {decoded_s:.3f} s decoded")
        expected = int(round(declared_s * sample_rate))
        if samples.size > expected:
            samples = samples[:expected]
    return np.clip(samples, -1.0, 1.0)


def resample_audio(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample mono audio with FFmpeg's resampler (libswresample through PyAV).

    samples: (S,) float in [-1, 1] at ``rate_in`` Hz. Returns (round(S * rate_out / rate_in),) float32
    (the resampler output after a flush, cut or zero-padded by at most a few samples to that length).
    """
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"samples must be 1-D mono, got shape {x.shape}")
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    if rate_in == rate_out or x.size == 0:
        return x.copy()
    frames = []
    for start in range(0, x.size, 16 * _AUDIO_CHUNK):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[None, start : start + 16 * _AUDIO_CHUNK]),
                                           format="flt", layout="mono")
        frame.sample_rate = rate_in
        frame.pts = start
        frame.time_base = Fraction(1, rate_in)
        frames.append(frame)
    out = _resample_frames(iter(frames), rate_out)
    n_expected = int(round(x.size * rate_out / rate_in))
    if out.size >= n_expected:
        return out[:n_expected]
    return np.concatenate([out, np.zeros(n_expected - out.size, dtype=np.float32)])


# --------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------
def _as_rate(fps: float) -> Fraction:
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    # 30000/1001-style NTSC rates survive the float round trip with this denominator bound
    return Fraction(fps).limit_denominator(100_000)


def _audio_planes(audio: np.ndarray, path: Path) -> np.ndarray:
    """(S,) or (S, C) float audio -> (C, S) float32 clipped to [-1, 1]."""
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[None, :]
    elif a.ndim == 2 and a.shape[1] in (1, 2):
        a = a.T
    else:
        raise MediaWriteError(path, f"audio must be (S,) mono or (S, C) with C in (1, 2), got shape {a.shape}")
    return np.ascontiguousarray(np.clip(a, -1.0, 1.0))


class _AudioEncoder:
    """Feeds (C, S) float audio into an audio stream in AAC-frame-sized pieces."""

    def __init__(self, container: av.container.OutputContainer, codec: str, planes: np.ndarray, rate: int) -> None:
        self.container = container
        self.planes = planes
        self.rate = rate
        self.layout = "mono" if planes.shape[0] == 1 else "stereo"
        self.stream = container.add_stream(codec, rate=rate, layout=self.layout)
        self.fmt = "s16" if codec == "pcm_s16le" else "fltp"
        self.cursor = 0

    def encode_until(self, n_samples: int | None) -> None:
        end = self.planes.shape[1] if n_samples is None else min(n_samples, self.planes.shape[1])
        while self.cursor < end:
            stop = min(self.cursor + _AUDIO_CHUNK, end)
            piece = self.planes[:, self.cursor : stop]
            if self.fmt == "s16":
                # interleaved int16 (1, S * C), quantised as FFmpeg's own float -> s16 conversion
                data = float_to_pcm16(piece.T).reshape(1, -1)
            else:
                data = np.ascontiguousarray(piece)
            frame = av.AudioFrame.from_ndarray(data, format=self.fmt, layout=self.layout)
            frame.sample_rate = self.rate
            frame.pts = self.cursor
            frame.time_base = Fraction(1, self.rate)
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            self.cursor = stop

    def finish(self) -> None:
        self.encode_until(None)
        for packet in self.stream.encode(None):
            self.container.mux(packet)


class VideoWriter:
    """Write an H.264 (libx264, yuv420p) mp4, optionally with an AAC track, atomically.

    Use as a context manager. Frames go to a temporary file beside ``path`` (fileutil.atomic_path,
    suffix ``.mp4``) that is renamed onto ``path`` when the ``with`` block ends without an exception;
    on an exception the temporary file is removed and nothing appears under ``path``.

    fps: frame rate (frames per second). audio: (S,) or (S, C) float in [-1, 1] at ``audio_rate`` Hz,
    interleaved with the video as frames are written. crf / preset: libx264 quality settings. threads:
    libx264 threads (None: x264's automatic count; 1 in single-threaded Dask workers).
    Frame width and height must be even (yuv420p halves the chroma planes).
    """

    def __init__(self, path: PathLike, fps: float, audio: np.ndarray | None = None, audio_rate: int | None = None,
                 crf: int = 18, preset: str = "medium", threads: int | None = None) -> None:
        self.path = Path(path)
        self.threads = threads  # libx264 threads; None: x264's automatic count
        self.rate = _as_rate(fps)
        if audio is not None and (audio_rate is None or audio_rate <= 0):
            raise ValueError(f"audio_rate must be a positive int when audio is given, got {audio_rate!r}")
        self.audio = _audio_planes(audio, self.path) if audio is not None else None
        self.audio_rate = audio_rate
        self.crf = int(crf)
        self.preset = preset
        self.n_frames = 0
        self._stack: contextlib.ExitStack | None = None
        self._container: av.container.OutputContainer | None = None
        self._video: av.video.stream.VideoStream | None = None
        self._audio: _AudioEncoder | None = None
        self._size: tuple[int, int] | None = None  # (H, W)

    def __enter__(self) -> "VideoWriter":
        stack = contextlib.ExitStack()
        try:
            tmp = stack.enter_context(atomic_path(self.path, suffix=".mp4"))
            self._container = av.open(str(tmp), mode="w", format="mp4")
        except (OSError, av.error.FFmpegError) as exc:
            stack.close()
            raise MediaWriteError(self.path, f"cannot create the output file: {exc}") from exc
        self._stack = stack
        return self

    def _start(self, height: int, width: int) -> None:
        assert self._container is not None
        if height % 2 or width % 2 or height < 2 or width < 2:
            raise MediaWriteError(self.path, f"frame size {width}x{height} (WxH) must be even for H.264 yuv420p")
        stream = self._container.add_stream("libx264", rate=self.rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.preset}
        if self.threads is not None:
            stream.options = {**stream.options, "threads": str(int(self.threads))}
        self._video = stream
        if self.audio is not None:
            assert self.audio_rate is not None
            self._audio = _AudioEncoder(self._container, "aac", self.audio, int(self.audio_rate))
        self._size = (height, width)

    def write(self, frames: np.ndarray) -> None:
        """Append (N, H, W, 3) or (H, W, 3) uint8 RGB frames; the size is fixed by the first frame."""
        if self._container is None:
            raise MediaWriteError(self.path, "VideoWriter.write called outside its `with` block")
        arr = np.asarray(frames)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise MediaWriteError(self.path, f"frames must be (N, H, W, 3) or (H, W, 3) RGB, got shape {arr.shape}")
        if arr.dtype != np.uint8:
            raise MediaWriteError(self.path, f"frames must be uint8, got {arr.dtype}")
        if self._size is None:
            self._start(arr.shape[1], arr.shape[2])
        if tuple(arr.shape[1:3]) != self._size:
            raise MediaWriteError(self.path, f"frame size {arr.shape[2]}x{arr.shape[1]} differs from the first "
                                             f"frame's {self._size[1]}x{self._size[0]} (WxH)")
        assert self._video is not None
        try:
            for img in arr:
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                frame.pts = self.n_frames
                frame.time_base = 1 / self.rate
                for packet in self._video.encode(frame):
                    self._container.mux(packet)
                self.n_frames += 1
            if self._audio is not None:
                # keep audio in step with the video so the muxer does not buffer a whole track
                self._audio.encode_until(int(self.n_frames / self.rate * self._audio.rate))
        except (OSError, av.error.FFmpegError) as exc:
            raise MediaWriteError(self.path, f"encoding failed: {exc}") from exc

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._stack is not None and self._container is not None
        stack, container = self._stack, self._container
        self._stack = self._container = None
        if exc_type is not None:
            with contextlib.suppress(Exception):
                container.close()
            stack.__exit__(exc_type, exc, tb)  # removes the temporary file
            return
        try:
            if self.n_frames == 0:
                raise MediaWriteError(self.path, "no frames were written")
            assert self._video is not None
            try:
                for packet in self._video.encode(None):
                    container.mux(packet)
                if self._audio is not None:
                    self._audio.finish()
                container.close()
            except (OSError, av.error.FFmpegError) as exc:
                raise MediaWriteError(self.path, f"finishing the file failed: {exc}") from exc
        except BaseException as err:
            with contextlib.suppress(Exception):
                container.close()
            stack.__exit__(type(err), err, err.__traceback__)
            raise
        try:
            stack.close()  # renames the temporary file onto self.path
        except OSError as exc:
            raise MediaWriteError(self.path, f"cannot move the finished file into place: {exc}") from exc
        logger.debug("wrote %s (%d frames)", self.path, self.n_frames)


def write_video(path: PathLike, frames: np.ndarray, fps: float, audio: np.ndarray | None = None,
                audio_rate: int | None = None, crf: int = 18, preset: str = "medium") -> Path:
    """Write (T, H, W, 3) uint8 RGB ``frames`` (and optional audio) to an H.264 + AAC mp4. Returns ``path``."""
    with VideoWriter(path, fps, audio=audio, audio_rate=audio_rate, crf=crf, preset=preset) as writer:
        writer.write(frames)
    return Path(path)


_AUDIO_FORMATS = {".wav": ("wav", "pcm_s16le"), ".m4a": ("ipod", "aac")}


def write_audio(path: PathLike, samples: np.ndarray, sample_rate: int) -> Path:
    """Write (S,) mono or (S, C) float audio in [-1, 1] to ``.wav`` (PCM16) or ``.m4a`` (AAC). Returns ``path``."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in _AUDIO_FORMATS:
        raise MediaWriteError(path, f"unsupported audio suffix {path.suffix!r}; use .wav or .m4a")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    planes = _audio_planes(samples, path)
    if planes.shape[1] == 0:
        raise MediaWriteError(path, "no audio samples to write")
    fmt, codec = _AUDIO_FORMATS[suffix]
    try:
        with atomic_path(path, suffix=suffix) as tmp:
            with av.open(str(tmp), mode="w", format=fmt) as container:
                encoder = _AudioEncoder(container, codec, planes, int(sample_rate))
                encoder.finish()
    except (OSError, av.error.FFmpegError) as exc:
        raise MediaWriteError(path, f"writing audio failed: {exc}") from exc
    return path
