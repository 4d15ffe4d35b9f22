"""A clip's frames and audio: the 25 fps frames of its time range, in chunks, and a budgeted buffer that keeps
them between the video task's two passes (so a clip that fits is decoded once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .manifest import ClipSource


def _held_nbytes(a: np.ndarray) -> int:
    """Bytes kept alive by ``a``: its base array's when it is a view (a chunk slice keeps the whole chunk)."""
    base = a.base if isinstance(a.base, np.ndarray) else a
    return int(max(a.nbytes, base.nbytes))


class FrameBuffer:
    """Pass-through over a chunk stream that keeps the frames while they fit ``budget_bytes``.

    After the stream is consumed, :attr:`chunks` holds every chunk (so a second decode is not needed), or
    is None when the frames outgrew the budget: then the buffer was dropped at the moment it would have
    exceeded it, so at most ``budget_bytes`` of frames are ever held here.
    """

    def __init__(self, chunks: Iterator[Any], budget_bytes: int) -> None:
        self._src = chunks
        self.budget_bytes = int(budget_bytes)
        self.nbytes = 0
        self.peak_bytes = 0
        self.chunks: list[Any] | None = [] if budget_bytes > 0 else None

    def __iter__(self) -> Iterator[Any]:
        for ch in self._src:
            if self.chunks is not None:
                size = _held_nbytes(ch.frames)
                if self.nbytes + size > self.budget_bytes:
                    self.chunks, self.nbytes = None, 0  # over budget: fall back to a second decode pass
                else:
                    self.chunks.append(ch)
                    self.nbytes += size
                    self.peak_bytes = max(self.peak_bytes, self.nbytes)
            yield ch


def clip_audio(samples: np.ndarray, rate: int, start_s: float | None, end_s: float | None) -> np.ndarray:
    """(N,) samples at ``rate`` Hz -> the samples of [start_s, end_s) seconds (None: from the start / to the end)."""
    a = 0 if start_s is None else int(round(start_s * rate))
    b = len(samples) if end_s is None else int(round(end_s * rate))
    return samples[a:b]


def drain_chunks(chunks: list[Any]) -> Iterator[Any]:
    """Yield and forget the kept chunks one by one, so each is freed once it is cropped."""
    while chunks:
        yield chunks.pop(0)


def range_chunks(path: Path, fps: float, chunk_frames: int, start_s: float | None, end_s: float | None,
                  threads: int | None = None) -> Iterator[Any]:
    """Chunks of the 25 fps stream restricted to output frames k with start <= k / fps < end (renumbered)."""
    from types import SimpleNamespace

    from dicetalk_bench import media

    k0 = 0 if start_s is None else int(round(start_s * fps))
    k1 = None if end_s is None else int(round(end_s * fps))
    gen = media.iter_video(path, chunk_frames=chunk_frames, fps=fps, threads=threads)
    n_out = 0
    try:
        for ch in gen:
            lo, hi = ch.start_index, ch.start_index + len(ch.frames)
            a, b = max(lo, k0), hi if k1 is None else min(hi, k1)
            if b > a:
                yield SimpleNamespace(frames=ch.frames[a - lo:b - lo], pts_s=ch.pts_s[a - lo:b - lo], start_index=n_out)
                n_out += b - a
            if k1 is not None and hi >= k1:
                break
    finally:
        gen.close()


def read_clip_audio(clip: ClipSource, rate: int) -> tuple[np.ndarray, Path]:
    """The clip's mono samples at ``rate`` Hz (its audio file, else the video's audio stream) and that source."""
    from dicetalk_bench import media

    src = clip.audio_path or clip.video_path
    return clip_audio(media.read_audio(src, rate), rate, clip.start_s, clip.end_s), src
