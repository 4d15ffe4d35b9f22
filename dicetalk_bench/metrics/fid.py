"""FID and KID over the frames of two sets of videos (generated vs reference).

Protocol (every item is recorded in the result): each video is decoded at its own frame rate, every
``frame_stride``-th frame is kept, optionally centre-cropped to a square (``crop="center"``), and fed as uint8 to
the FID InceptionV3 (:mod:`.inception`, resize mode ``tf1`` or ``pytorch-fid``). The 2048-d pool3 features of all
kept frames of all videos are pooled into one Gaussian per set (talking-head papers pool frames over the whole test
set); FD via :func:`.frechet.frechet_distance_from_stats` (float64, ddof 1, eigh). KID uses the
same features (:mod:`.kid`).

Small sets: with N <= 2048 frames the covariance is singular and FID is strongly biased, so a set with fewer than
``min_frames`` (default 2049) frames raises :class:`SmallSetError` unless ``force_small_set``; KID needs
``subset_size`` (default 1000) frames per set, else the same error (forced: subset_size = the smaller set size).

Reference-set features are cached by (manifest hash, weights sha256, resize mode, crop, frame stride).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dicetalk_bench.errors import TOO_SHORT
from dicetalk_bench.metrics import _cache
from dicetalk_bench.metrics.feature_sets import stack_features
from dicetalk_bench.metrics.failures import EXCLUDE, FailureLog, attempt
from dicetalk_bench.metrics.frechet import FeatureStats, frechet_distance_raw
from dicetalk_bench.metrics.kid import DEFAULT_SUBSET_SIZE, DEFAULT_SUBSETS, kernel_inception_distance
from dicetalk_bench.metrics.registry import FID, KID, ScoreRequest
from dicetalk_bench.metrics.result import MetricResult
from dicetalk_bench.metrics.video_set import VideoSet, list_videos

logger = logging.getLogger(__name__)

MIN_FRAMES = 2049  # > 2048 so the 2048x2048 covariance can have full rank


class SmallSetError(ValueError):
    """A set is too small for a stable FID/FVD/KID estimate (pass force_small_set / --force-small-set)."""


@dataclasses.dataclass(frozen=True)
class FIDConfig:
    resize_mode: Literal["tf1", "pytorch-fid"] = "tf1"
    crop: Literal["none", "center"] = "none"
    frame_stride: int = 1
    batch_size: int = 32
    min_frames: int = MIN_FRAMES
    kid_subset_size: int = DEFAULT_SUBSET_SIZE
    kid_subsets: int = DEFAULT_SUBSETS
    seed: int = 0

    def __post_init__(self) -> None:
        if self.resize_mode not in ("tf1", "pytorch-fid"):
            raise ValueError(f"FID resize_mode {self.resize_mode!r}: expected 'tf1' or 'pytorch-fid'")
        if self.crop not in ("none", "center"):
            raise ValueError(f"FID crop {self.crop!r}: expected 'none' or 'center'")
        if self.frame_stride < 1 or self.batch_size < 1:
            raise ValueError(f"FID frame_stride and batch_size must be >= 1, got {self.frame_stride}, "
                             f"{self.batch_size}")


def center_crop(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) -> (N, S, S, 3), S = min(H, W), centred (extra pixel on the bottom/right when odd)."""
    h, w = frames.shape[1:3]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return frames[:, top:top + s, left:left + s]


def video_features(model: Any, path: Path, config: FIDConfig, device: str = "cpu") -> np.ndarray:
    """(n_i, 2048) float32 features of the kept frames of one video (streamed in chunks)."""
    from dicetalk_bench import media
    from dicetalk_bench.metrics.inception import FEATURE_DIM, extract_features

    parts = []
    for chunk in media.iter_video(path, chunk_frames=max(config.batch_size, 1)):
        idx = np.arange(chunk.start_index, chunk.start_index + len(chunk.frames))
        keep = (idx % config.frame_stride) == 0
        frames = chunk.frames[keep]
        if len(frames) == 0:
            continue
        if config.crop == "center":
            frames = center_crop(frames)
        parts.append(extract_features(model, frames, config.batch_size, device))
    if not parts:
        return np.zeros((0, FEATURE_DIM), dtype=np.float32)
    return np.concatenate(parts)


def set_features(model: Any, videos: VideoSet, config: FIDConfig,
                 device: str = "cpu") -> tuple[dict[str, np.ndarray], FailureLog]:
    """Per-video features of a set; a video that fails for a per-item reason (unreadable, no frames) is recorded
    with its kind and skipped; any other error propagates."""
    feats: dict[str, np.ndarray] = {}
    failures = FailureLog()
    for entry in videos:
        f = attempt(failures, entry.clip_id, lambda: video_features(model, entry.path, config, device), what="FID")
        if f is None:
            continue
        if len(f) == 0:
            failures.add(entry.clip_id, TOO_SHORT, f"{entry.path}: no frames")
            continue
        feats[entry.clip_id] = f
    return feats, failures


def _reference_features(model: Any, reference: VideoSet, config: FIDConfig, record: Mapping[str, Any],
                        cache_dir: Path | None, device: str) -> tuple[dict[str, np.ndarray], dict[str, str], str]:
    manifest = reference.manifest_hash()
    key = {"metric": "inception-frames", "manifest": manifest, "weights_sha256": record["sha256"],
           "resize_mode": config.resize_mode, "crop": config.crop, "frame_stride": config.frame_stride,
           "internal_dtype": record.get("internal_dtype", "float32")}
    if cache_dir is not None:
        path = _cache.cache_file(cache_dir, "fid", key)
        hit = _cache.load_features(path, key)
        if hit is not None:
            return hit[0], hit[1], manifest
    feats, failures = set_features(model, reference, config, device)
    if cache_dir is not None:
        _cache.save_features(path, key, feats, failures)
    return feats, failures, manifest


def probed_frame_counts(videos: VideoSet) -> list[int] | None:
    """Frame counts from the container headers (cheap), or None if any video does not state one or cannot be
    probed. Used to refuse a too-small set before any network runs."""
    from dicetalk_bench import media

    counts = []
    for entry in videos:
        try:
            n = media.probe(entry.path).n_frames
        except media.MediaError:
            n = 0  # will be a recorded failure
        if n is None:
            return None
        counts.append(int(n))
    return counts


def _precheck_frames(videos: VideoSet, reference: VideoSet, config: FIDConfig, metrics: tuple[str, ...],
                     force_small_set: bool) -> None:
    if force_small_set:
        return
    need = max(config.min_frames if FID in metrics else 0, config.kid_subset_size if KID in metrics else 0)
    for vs in (videos, reference):
        counts = probed_frame_counts(vs)
        if counts is None:
            continue
        kept = sum(-(-n // config.frame_stride) for n in counts)
        if kept < need:
            raise SmallSetError(
                f"{'/'.join(m.upper() for m in metrics)}: {vs.root} has about {kept} frames (frame stride "
                f"{config.frame_stride}); at least {need} per set are needed for a stable estimate. Use more videos,"
                f" or pass --force-small-set to compute it anyway (recorded in the result)")


def compute_fid_kid(videos: VideoSet, reference: VideoSet, *, config: FIDConfig = FIDConfig(),
                    weights_path: str | Path | None = None, allow_unverified: bool = False, device: str = "cpu",
                    force_small_set: bool = False, cache_dir: Path | None = None,
                    metrics: tuple[str, ...] = (FID, KID)) -> list[MetricResult]:
    """FID and/or KID of ``videos`` against ``reference``; returns one MetricResult per name in ``metrics``."""
    from dicetalk_bench.metrics.inception import FEATURE_DIM, load_inception

    _precheck_frames(videos, reference, config, metrics, force_small_set)
    model, record = load_inception(weights_path, allow_unverified=allow_unverified,
                                   resize_mode=config.resize_mode, device=device)
    gen_feats, gen_fail = set_features(model, videos, config, device)
    ref_feats, ref_fail, manifest = _reference_features(model, reference, config, record, cache_dir, device)
    gen, ref = stack_features(gen_feats, dim=FEATURE_DIM), stack_features(ref_feats, dim=FEATURE_DIM)
    if len(gen) < 2 or len(ref) < 2:
        raise SmallSetError(f"FID/KID: need at least 2 decodable frames per set; got {len(gen)} generated frames "
                            f"from {videos.root} and {len(ref)} reference frames from {reference.root}")
    protocol: dict[str, Any] = {
        "features": "InceptionV3 pool3 (2048-d), torch-fidelity inception-v3-compat",
        "resize_mode": config.resize_mode, "crop": config.crop, "frame_stride": config.frame_stride,
        "input": "uint8 RGB frames decoded at the native fps", "pooling": "all kept frames of all videos",
        "frame_size_rule": "each set's frames (after crop) resized to 299x299 by resize_mode, whatever their size; "
                           "non-square frames are squashed unless crop=center",
        "reference_manifest_sha256": manifest, "n_reference_videos": len(ref_feats),
        "n_reference_frames": int(len(ref)), "reference_failed_clips": sorted(ref_fail), "forced_small_set": False,
        "failure_policy": EXCLUDE,
    }
    # where the sets were read from and why reference videos failed: provenance, not protocol (it does not change
    # the number; the reference set is identified by its content hash above)
    run_extra: dict[str, Any] = {"videos_dir": str(videos.root), "reference_dir": str(reference.root),
                                 "reference_failures": dict(ref_fail)}
    failed = gen_fail
    fields = failed.result_fields(videos.clip_ids)
    results = []
    if FID in metrics:
        small = min(len(gen), len(ref)) < config.min_frames
        if small and not force_small_set:
            raise SmallSetError(
                f"FID: {len(gen)} generated and {len(ref)} reference frames; at least {config.min_frames} per set "
                f"are needed for a full-rank 2048-d covariance (below that FID is unstable and biased). Use more "
                f"videos, or pass --force-small-set to compute it anyway (recorded in the result)")
        raw = frechet_distance_raw(*_moments(gen), *_moments(ref))
        value = max(raw, 0.0)
        if raw < 0:
            logger.info("FID raw value %.6g < 0 from round-off; reported as 0", raw)
        results.append(MetricResult(
            key=FID, value=value, higher_is_better=False, n_videos=len(gen_feats), n_frames=int(len(gen)),
            protocol=protocol | {"covariance_ddof": 1, "frechet": "float64 eigh (TF-GAN trace_sqrt_product)",
                                 "forced_small_set": bool(small)},
            extractors=(record,), extra=run_extra | {"raw_value": raw, "failure_counts": failed.counts()},
            features=gen_feats, reference_features=ref_feats, **fields))
    if KID in metrics:
        subset = config.kid_subset_size
        small = min(len(gen), len(ref)) < subset
        if small and not force_small_set:
            raise SmallSetError(
                f"KID: {len(gen)} generated and {len(ref)} reference frames, fewer than the subset size {subset}; "
                f"pass --force-small-set to use subsets of the smaller set's size (recorded in the result)")
        if small:
            subset = min(len(gen), len(ref))
        kid = kernel_inception_distance(ref, gen, n_subsets=config.kid_subsets, subset_size=subset,
                                        seed=config.seed)
        results.append(MetricResult(
            key=KID, value=kid.mean, higher_is_better=False, n_videos=len(gen_feats), n_frames=int(len(gen)),
            protocol=protocol | {"kernel": "(x.y/d + 1)^3", "subset_size": kid.subset_size,
                                 "n_subsets": kid.n_subsets, "seed": config.seed, "forced_small_set": bool(small)},
            extractors=(record,), extra=run_extra | {"std": kid.std, "failure_counts": failed.counts()},
            features=gen_feats, reference_features=ref_feats, **fields))
    return results


def _moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = FeatureStats.from_features(x)
    return s.mean(), s.cov(ddof=1)


def score_fid(request: ScoreRequest) -> list[MetricResult]:
    """Registry entry for ``fid`` and ``kid`` (one Inception pass serves both)."""
    if request.reference is None:
        raise ValueError("FID/KID need a reference set (--reference DIR)")
    names = tuple(m for m in (request.metrics or (FID, KID)) if m in (FID, KID))
    config = FIDConfig(resize_mode=request.option(FID, "mode", "tf1"), crop=request.option(FID, "crop", "none"),
                       frame_stride=int(request.option(FID, "frame_stride", 1)), batch_size=request.batch_size,
                       kid_subset_size=int(request.option(KID, "subset_size", DEFAULT_SUBSET_SIZE)),
                       kid_subsets=int(request.option(KID, "subsets", DEFAULT_SUBSETS)), seed=request.seed)
    return compute_fid_kid(list_videos(request.videos), list_videos(request.reference), config=config,
                           weights_path=request.weights.get("inception-fid"),
                           allow_unverified=request.allow_unverified, device=request.device,
                           force_small_set=request.force_small_set, cache_dir=request.cache_dir, metrics=names)
