"""Folders of videos as metric inputs, and the rule that pairs a generated video with its ground truth.

Clip id: the path of the video relative to the folder, without its suffix, with '/' separators (for a flat folder,
the file stem). ``M003_angry_001.mp4`` has clip id ``M003_angry_001``; ``sub/a.mp4`` has ``sub/a``. Two files with
the same clip id (``a.mp4`` and ``a.avi``) are an error. Hidden files and non-video suffixes are ignored.

Pairing rule (paired metrics: PSNR, SSIM, LPIPS, CSIM; documented in docs/metrics.md):

1. a generated video is paired with the reference video of the same clip id; generated clips without a reference
   are recorded as failures ("no reference video with clip id ..."), reference clips without a generated video are
   listed as unmatched (not an error: a method may be scored on a subset, and the count is reported);
2. frames: the reference is decoded at the generated video's fps (``media.read_video(fps=...)``, ffmpeg ``-r``
   semantics), so output frame k of both stands for time k / fps; both are then cut to the shorter length and the
   number of dropped frames is recorded;
3. size: if the frame sizes differ, the reference is resized to the generated size (bilinear with antialiasing,
   rounded to uint8) and this is recorded (``resized_reference``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


@dataclasses.dataclass(frozen=True)
class VideoEntry:
    clip_id: str
    path: Path


@dataclasses.dataclass(frozen=True)
class VideoSet:
    """The videos of one folder, sorted by clip id."""

    root: Path
    entries: tuple[VideoEntry, ...]

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[VideoEntry]:
        return iter(self.entries)

    @property
    def clip_ids(self) -> list[str]:
        return [e.clip_id for e in self.entries]

    def get(self, clip_id: str) -> VideoEntry | None:
        for e in self.entries:
            if e.clip_id == clip_id:
                return e
        return None

    def manifest_hash(self) -> str:
        """sha256 over (clip id, sha256 of the file bytes) of every video: changes when any video changes."""
        from dicetalk_bench.fileutil import sha256_file

        h = hashlib.sha256()
        for e in self.entries:
            h.update(f"{e.clip_id}\t{sha256_file(e.path)}\n".encode())
        return h.hexdigest()


def clip_id_for(path: Path, root: Path) -> str:
    """Clip id of ``path`` inside ``root``: relative posix path without the suffix."""
    return path.relative_to(root).with_suffix("").as_posix()


def list_videos(root: str | Path, *, recursive: bool = True) -> VideoSet:
    """All videos under ``root`` (suffixes :data:`VIDEO_SUFFIXES`), sorted by clip id.

    Raises FileNotFoundError if ``root`` is not a folder, ValueError if it holds no videos or two videos share a
    clip id.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"video folder {root} does not exist or is not a folder")
    files = root.rglob("*") if recursive else root.iterdir()
    by_id: dict[str, Path] = {}
    for p in files:
        rel = p.relative_to(root)
        if not p.is_file() or p.suffix.lower() not in VIDEO_SUFFIXES or any(s.startswith(".") for s in rel.parts):
            continue
        cid = clip_id_for(p, root)
        if cid in by_id:
            raise ValueError(f"video folder {root}: clip id {cid!r} is used by both {by_id[cid].name} and {p.name}; "
                             f"keep one file per clip id")
        by_id[cid] = p
    if not by_id:
        raise ValueError(f"video folder {root} holds no videos (looked for {', '.join(VIDEO_SUFFIXES)})")
    return VideoSet(root, tuple(VideoEntry(cid, by_id[cid]) for cid in sorted(by_id)))


@dataclasses.dataclass(frozen=True)
class Pairing:
    """Result of :func:`pair_videos`: matched (generated, reference) entries, generated ids without a reference,
    and reference ids without a generated video."""

    pairs: tuple[tuple[VideoEntry, VideoEntry], ...]
    missing_reference: tuple[str, ...]
    unmatched_reference: tuple[str, ...]


def pair_videos(generated: VideoSet, reference: VideoSet) -> Pairing:
    """Pair by clip id (rule 1 of the module docstring)."""
    ref = {e.clip_id: e for e in reference}
    gen_ids = set(generated.clip_ids)
    pairs = tuple((e, ref[e.clip_id]) for e in generated if e.clip_id in ref)
    missing = tuple(e.clip_id for e in generated if e.clip_id not in ref)
    unmatched = tuple(cid for cid in sorted(ref) if cid not in gen_ids)
    if missing:
        logger.warning("%d generated videos have no reference with the same clip id (e.g. %s)", len(missing),
                       missing[0])
    return Pairing(pairs, missing, unmatched)


# Rule 3 as recorded in the protocol of every paired metric (``frame_size_rule``).
FRAME_SIZE_RULE = "reference resized to the generated frame size (bilinear, antialiased, rounded to uint8)"


def pairs_reference_sha256(pairing: Pairing) -> str:
    """Content hash of the reference side of ``pairing``: sha256 over ``"<clip id>\t<file sha256>\n"`` of every
    paired reference video in clip-id order (the reference set a paired metric was scored against)."""
    from dicetalk_bench.fileutil import sha256_file

    h = hashlib.sha256()
    for _, ref in sorted(pairing.pairs, key=lambda p: p[0].clip_id):
        h.update(f"{ref.clip_id}\t{sha256_file(ref.path)}\n".encode())
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class PairedFrames:
    """Aligned frames of one pair: ``generated`` and ``reference`` (T, H, W, 3) uint8 with equal shapes."""

    clip_id: str
    generated: np.ndarray
    reference: np.ndarray
    fps: float
    dropped_generated: int
    dropped_reference: int
    resized_reference: bool


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, height, width, 3) uint8, bilinear with antialiasing, rounded."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    y = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return y.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def align_pair(clip_id: str, generated: np.ndarray, reference: np.ndarray, fps: float) -> PairedFrames:
    """Rules 2-3 on decoded frames: cut to the shorter length, resize the reference to the generated size."""
    n = min(len(generated), len(reference))
    if n == 0:
        raise ValueError(f"clip {clip_id!r}: a video of the pair has no frames")
    gen, ref = generated[:n], reference[:n]
    resized = gen.shape[1:3] != ref.shape[1:3]
    if resized:
        ref = resize_frames(ref, gen.shape[1], gen.shape[2])
    return PairedFrames(clip_id, gen, ref, fps, len(generated) - n, len(reference) - n, resized)


def read_pair(generated: VideoEntry, reference: VideoEntry, max_frames: int | None = None) -> PairedFrames:
    """Decode a pair and align it (rules 2-3): the reference is read at the generated video's fps."""
    from dicetalk_bench import media

    gen = media.read_video(generated.path, max_frames=max_frames)
    ref = media.read_video(reference.path, fps=gen.fps, max_frames=max_frames)
    return align_pair(generated.clip_id, gen.frames, ref.frames, gen.fps)


#: Frames per decoded chunk when a pair is scored in bounded memory: a multiple of the LPIPS batch (16), so the
#: network sees the same batches as on the whole video.
PAIR_CHUNK_FRAMES = 32


@dataclasses.dataclass(frozen=True)
class PairScores:
    """Per-frame values of one pair from :func:`score_pair_chunks`: ``values`` (T,) float64 for the T aligned
    frames, and the alignment record of :class:`PairedFrames` (without the frames)."""

    clip_id: str
    values: np.ndarray
    fps: float
    dropped_generated: int
    dropped_reference: int
    resized_reference: bool

    @property
    def n_frames(self) -> int:
        return int(len(self.values))


def score_pair_chunks(generated: VideoEntry, reference: VideoEntry,
                      per_frames: Callable[[np.ndarray, np.ndarray], np.ndarray],
                      chunk_frames: int = PAIR_CHUNK_FRAMES) -> PairScores:
    """Rules 2-3 and a per-frame score of a pair, decoding both videos in chunks (bounded memory).

    Both videos are streamed side by side (:func:`dicetalk_bench.media.iter_video`, the reference at the
    generated video's fps) in chunks of ``chunk_frames``; each run of aligned frames (reference resized to the
    generated size when they differ) goes to ``per_frames(generated, reference)`` -> (n,) values, in pieces of
    ``chunk_frames`` frames except the last, and only those values are kept. The longer video is decoded to its end
    (its frames counted as dropped, its truncation check applied). The values equal those of ``per_frames`` on
    :func:`read_pair`'s whole arrays whenever ``per_frames`` works frame by frame (or in batches dividing
    ``chunk_frames``).
    """
    from dicetalk_bench import media

    fps = media.probe(generated.path).fps or 0.0
    streams = [media.iter_video(generated.path, chunk_frames=chunk_frames),
               media.iter_video(reference.path, chunk_frames=chunk_frames, fps=fps)]
    pending: list[list[np.ndarray]] = [[], []]
    counts = [0, 0]
    done = [False, False]
    values: list[np.ndarray] = []
    resized = False
    n_paired = 0

    def take(side: int, n: int) -> np.ndarray:
        out = np.concatenate(pending[side]) if len(pending[side]) > 1 else pending[side][0]
        pending[side] = [out[n:]] if n < len(out) else []
        return out[:n]

    while not all(done):
        for side in (0, 1):
            if not done[side]:
                chunk = next(streams[side], None)
                if chunk is None:
                    done[side] = True
                else:
                    pending[side].append(chunk.frames)
                    counts[side] += len(chunk.frames)
        avail = min(counts[0], counts[1]) - n_paired
        n = avail if any(done) else avail // chunk_frames * chunk_frames
        if n > 0:
            gen, ref = take(0, n), take(1, n)
            if gen.shape[1:3] != ref.shape[1:3]:
                resized = True
                ref = resize_frames(ref, gen.shape[1], gen.shape[2])
            values.append(np.asarray(per_frames(gen, ref), dtype=np.float64).reshape(-1))
            n_paired += n
        for side in (0, 1):  # frames beyond the end of a finished video are only counted
            if done[1 - side]:
                pending[side] = []
    if n_paired == 0:
        raise ValueError(f"clip {generated.clip_id!r}: a video of the pair has no frames")
    return PairScores(generated.clip_id, np.concatenate(values), float(fps), counts[0] - n_paired,
                      counts[1] - n_paired, resized)
