"""FVD between two sets of videos with a pinned clip protocol.

Protocol (all recorded in the result; docs/metrics.md, "FVD"):

- clips of ``clip_length`` = 16 consecutive frames at the video's native fps (StyleGAN-V ``fvd2048_16f``);
- ``clips_per_video`` clips per video (default 1) at start offsets drawn without replacement from
  ``np.random.default_rng([seed, crc32(clip id)])``, so a video's offsets do not depend on the other files in the
  folder; a video shorter than the clip is recorded as a failure, never dropped silently;
- frame geometry (``frame_geometry``): ``"squash"`` (default) resizes each frame to 224x224 without crop, the aspect
  ratio not kept, as the original TF FVD (``tf.image.resize_bilinear`` to 224x224), cd-fvd and DisCo do;
  ``"short-side-centre-crop"`` scales the short side to 224 (long side ``ceil(long * 224 / short)``) and takes the
  centred 224x224 window (offset ``(long' - 224) // 2``), as StyleGAN-V's data pipeline and
  common_metrics_on_video_quality do. Both are the same on square frames. Squash is the default because it is the TF
  FVD definition and never drops picture content (a talking-head crop loses chin or forehead otherwise);
- the resize itself: ``resize="tf1"`` (TF1 ``resize_bilinear``, as the original TF FVD; torch-fidelity's exact
  port) or ``"bilinear"`` (``F.interpolate(align_corners=False)``, as cd-fvd and common_metrics), then scaled to
  [-1, 1] by x / 127.5 - 1;
- embedding: the 400 Kinetics logits averaged over time, from ``i3d-400`` (pytorch-i3d layout, BatchNorm eps
  ``i3d_bn_eps``, default 1e-5 as the converter of ``i3d_pretrained_400.pt``: see :mod:`.i3d`) or
  ``i3d-torchscript`` (StyleGAN-V, called with rescale=False, resize=False; its epsilon is inside the file);
- Fréchet distance over all clips (float64, ddof 1, eigh). Fewer than ``min_clips`` (401: full-rank 400-d
  covariance) clips per set raises :class:`~.fid.SmallSetError` unless forced.

Reference-clip features are cached by (manifest hash, weights sha256, backend and every protocol choice).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dicetalk_bench.errors import TooShortError
from dicetalk_bench.metrics import _cache
from dicetalk_bench.metrics.feature_sets import stack_features
from dicetalk_bench.metrics.failures import EXCLUDE, FailureLog, attempt
from dicetalk_bench.metrics.fid import SmallSetError
from dicetalk_bench.metrics.frechet import FeatureStats, frechet_distance_raw
from dicetalk_bench.metrics.registry import FVD, ScoreRequest
from dicetalk_bench.metrics.result import MetricResult
from dicetalk_bench.metrics.video_set import VideoSet, list_videos

logger = logging.getLogger(__name__)

CLIP_SIZE = 224
FEATURE_DIM = 400


FrameGeometry = Literal["squash", "short-side-centre-crop"]
FRAME_GEOMETRIES: tuple[str, ...] = ("squash", "short-side-centre-crop")
DEFAULT_I3D_BN_EPS = 1e-5  # = i3d.DEFAULT_BN_EPS (kept here so the config does not import torch)


@dataclasses.dataclass(frozen=True)
class FVDConfig:
    """The FVD protocol. ``i3d_bn_eps`` applies to the ``i3d-400`` backend only (recorded as None otherwise)."""

    backend: Literal["i3d-400", "i3d-torchscript"] = "i3d-400"
    clip_length: int = 16
    clips_per_video: int = 1
    seed: int = 0
    resize: Literal["tf1", "bilinear"] = "tf1"
    frame_geometry: FrameGeometry = "squash"
    i3d_bn_eps: float = DEFAULT_I3D_BN_EPS
    size: int = CLIP_SIZE
    batch_size: int = 8
    min_clips: int = FEATURE_DIM + 1

    def __post_init__(self) -> None:
        if self.backend not in ("i3d-400", "i3d-torchscript"):
            raise ValueError(f"FVD backend {self.backend!r}: expected 'i3d-400' or 'i3d-torchscript'")
        if self.resize not in ("tf1", "bilinear"):
            raise ValueError(f"FVD resize {self.resize!r}: expected 'tf1' or 'bilinear'")
        if self.frame_geometry not in FRAME_GEOMETRIES:
            raise ValueError(f"FVD frame_geometry {self.frame_geometry!r}: expected one of {FRAME_GEOMETRIES}")
        from dicetalk_bench.metrics.i3d import MIN_FRAMES, MIN_SIZE, check_bn_eps

        check_bn_eps(self.i3d_bn_eps)

        if self.clip_length < MIN_FRAMES:
            raise ValueError(f"FVD clip_length {self.clip_length}: I3D needs at least {MIN_FRAMES} frames")
        if self.size < MIN_SIZE:
            raise ValueError(f"FVD size {self.size}: I3D needs at least {MIN_SIZE} pixels")
        if self.clips_per_video < 1 or self.batch_size < 1:
            raise ValueError("FVD clips_per_video and batch_size must be >= 1")


def clip_offsets(clip_id: str, n_frames: int, config: FVDConfig) -> np.ndarray:
    """Sorted start frames of the clips of one video; empty if the video is shorter than a clip.

    Drawn without replacement from ``0 .. n_frames - clip_length`` by ``default_rng([seed, crc32(clip_id)])``;
    if there are fewer start positions than ``clips_per_video``, all positions are used.
    """
    n_starts = n_frames - config.clip_length + 1
    if n_starts <= 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([config.seed, zlib.crc32(clip_id.encode())])
    k = min(config.clips_per_video, n_starts)
    return np.sort(rng.choice(n_starts, size=k, replace=False)).astype(np.int64)


def resized_shape(height: int, width: int, size: int, frame_geometry: FrameGeometry) -> tuple[int, int]:
    """(H', W') a frame of ``height`` x ``width`` pixels is resized to before any crop.

    ``squash``: (size, size). ``short-side-centre-crop``: the short side becomes ``size`` and the long side
    ``ceil(long * size / short)`` (StyleGAN-V / common_metrics_on_video_quality ``preprocess_single``).
    """
    if frame_geometry == "squash" or height == width:
        return size, size
    scale = size / min(height, width)
    if height < width:
        return size, math.ceil(width * scale)
    return math.ceil(height * scale), size


def centre_crop_offsets(height: int, width: int, size: int) -> tuple[int, int]:
    """(top, left) of the centred ``size`` x ``size`` window: ``(H - size) // 2, (W - size) // 2``."""
    return (height - size) // 2, (width - size) // 2


def preprocess_clips(clips: np.ndarray, config: FVDConfig) -> Any:
    """(B, T, H, W, 3) uint8 -> (B, 3, T, size, size) float32 in [-1, 1].

    Resize to :func:`resized_shape` with ``config.resize``, centre-crop to ``size`` x ``size`` (a no-op for
    ``squash``), then x / 127.5 - 1.
    """
    import torch
    import torch.nn.functional as F

    clips = np.asarray(clips)
    if clips.dtype != np.uint8 or clips.ndim != 5 or clips.shape[-1] != 3:
        raise ValueError(f"FVD clips must be (B, T, H, W, 3) uint8, got {clips.shape} {clips.dtype}")
    b, t, h, w, _ = clips.shape
    x = torch.from_numpy(np.ascontiguousarray(clips)).reshape(b * t, h, w, 3).permute(0, 3, 1, 2).float()
    target = resized_shape(h, w, config.size, config.frame_geometry)
    if (h, w) != target:
        if config.resize == "tf1":
            from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

            x = interpolate_bilinear_2d_like_tensorflow1x(x, size=target, align_corners=False)
        else:
            x = F.interpolate(x, size=target, mode="bilinear", align_corners=False)
    top, left = centre_crop_offsets(target[0], target[1], config.size)
    x = x[:, :, top:top + config.size, left:left + config.size]
    x = x / 127.5 - 1.0  # TF FVD: 2 * x / 255 - 1
    return x.reshape(b, t, 3, config.size, config.size).permute(0, 2, 1, 3, 4).contiguous()


def clip_features(model: Any, clips: np.ndarray, config: FVDConfig, device: str = "cpu") -> np.ndarray:
    """(B, T, H, W, 3) uint8 clips -> (B, 400) float32 features, in batches of ``config.batch_size``."""
    import torch

    out = []
    with torch.inference_mode():
        for s in range(0, len(clips), config.batch_size):
            x = preprocess_clips(clips[s:s + config.batch_size], config).to(device)
            out.append(model(x).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), np.float32)


def _stack_clips(frames: np.ndarray, positions: np.ndarray, clip_length: int) -> np.ndarray:
    """(K, H, W, 3) frames, (C,) start positions into them -> (C, clip_length, H, W, 3) clips."""
    return np.stack([frames[p:p + clip_length] for p in positions])


def video_clip_features(model: Any, clip_id: str, path: Path, config: FVDConfig,
                        device: str = "cpu") -> np.ndarray:
    """(clips_per_video, 400) features of one video; TooShortError if it is shorter than one clip.

    Bounded memory: the clip offsets are drawn from the container's declared frame count, and one decoding pass
    (:func:`dicetalk_bench.media.read_frames_at`, chunks of 16 frames) keeps only the frames of those clips. The
    pass also counts the decoded frames; when the header was wrong (or silent) the offsets are drawn again from the
    true count and the clips read in a second pass, so the features always equal
    :func:`whole_video_clip_features`'s.
    """
    from dicetalk_bench import media

    declared = media.probe(path).n_frames
    n_guess = declared if declared is not None else -1
    selected = media.read_frames_at(path, _clip_frame_indices(clip_id, max(n_guess, 0), config))
    if selected.n_frames != n_guess:
        selected = media.read_frames_at(path, _clip_frame_indices(clip_id, selected.n_frames, config))
    starts = clip_offsets(clip_id, selected.n_frames, config)
    if len(starts) == 0:
        raise TooShortError(f"{path}: {selected.n_frames} frames, fewer than the FVD clip length "
                            f"{config.clip_length}")
    clips = _stack_clips(selected.frames, np.searchsorted(selected.indices, starts), config.clip_length)
    return clip_features(model, clips, config, device)


def _clip_frame_indices(clip_id: str, n_frames: int, config: FVDConfig) -> np.ndarray:
    starts = clip_offsets(clip_id, n_frames, config)
    if len(starts) == 0:
        return np.zeros(0, dtype=np.int64)
    return (starts[:, None] + np.arange(config.clip_length)[None, :]).reshape(-1)


def whole_video_clip_features(model: Any, clip_id: str, path: Path, config: FVDConfig,
                              device: str = "cpu") -> np.ndarray:
    """The reference reading of :func:`video_clip_features`: decode the whole video into memory, then cut the
    clips (memory grows with the video's length). Kept as the baseline of the bounded reader's tests and
    benchmark."""
    from dicetalk_bench import media

    frames = media.read_video(path).frames
    starts = clip_offsets(clip_id, len(frames), config)
    if len(starts) == 0:
        raise TooShortError(f"{path}: {len(frames)} frames, fewer than the FVD clip length {config.clip_length}")
    return clip_features(model, _stack_clips(frames, starts, config.clip_length), config, device)


ClipReader = Callable[[Any, str, Path, FVDConfig, str], np.ndarray]


def set_clip_features(model: Any, videos: VideoSet, config: FVDConfig, device: str = "cpu", *,
                      reader: ClipReader = video_clip_features) -> tuple[dict[str, np.ndarray], FailureLog]:
    """Per-video clip features, in clip-id order; a video that fails for a per-item reason (unreadable, shorter
    than a clip) is recorded with its kind and skipped; any other error propagates. Only the (clips, 400)
    features of each video are kept, never its frames."""
    from tqdm.auto import tqdm

    feats: dict[str, np.ndarray] = {}
    failures = FailureLog()
    for entry in tqdm(videos, desc="FVD features", unit="video", disable=None, leave=False):
        f = attempt(failures, entry.clip_id,
                    lambda: reader(model, entry.clip_id, entry.path, config, device), what="FVD")
        if f is not None:
            feats[entry.clip_id] = f
    return feats, failures


@dataclasses.dataclass(frozen=True)
class I3DExtractor:
    """Everything a Dask worker needs to rebuild the FVD extractor: the resolved weights file (the same path on
    every worker), the backend and its BatchNorm epsilon, and the clip protocol."""

    weights_path: str
    allow_unverified: bool
    device: str
    config: FVDConfig


def _worker_clip_features(spec: I3DExtractor, clip_id: str, path: Path) -> np.ndarray:
    """Dask task: one video's clip features with the worker's cached I3D."""
    from dicetalk_bench.metrics.i3d import load_i3d
    from dicetalk_bench.metrics.sharding import cached

    cfg = spec.config
    model = cached(("i3d", spec.weights_path, cfg.backend, cfg.i3d_bn_eps, spec.device),
                   lambda: load_i3d(cfg.backend, spec.weights_path, allow_unverified=spec.allow_unverified,
                                    device=spec.device, bn_eps=cfg.i3d_bn_eps)[0])
    return video_clip_features(model, clip_id, path, cfg, spec.device)


def sharded_clip_features(spec: I3DExtractor, sets: list[VideoSet],
                          sharding: Any) -> list[tuple[dict[str, np.ndarray], FailureLog]]:
    """:func:`set_clip_features` of each set in ``sets`` with one Dask task per video on one cluster
    (:mod:`.sharding`); the same features and failures, in the same order, as the serial loop."""
    from dicetalk_bench.metrics.sharding import collect, map_videos

    jobs = [(e.clip_id, e.path) for vs in sets for e in vs]
    outcomes = map_videos(_worker_clip_features, spec, jobs, sharding, what="FVD")
    out, start = [], 0
    for vs in sets:
        out.append(collect(outcomes[start:start + len(vs)]))
        start += len(vs)
    return out


def _protocol_key(config: FVDConfig) -> dict[str, Any]:
    return {"backend": config.backend, "clip_length": config.clip_length, "clips_per_video": config.clips_per_video,
            "seed": config.seed, "resize": config.resize, "frame_geometry": config.frame_geometry,
            "size": config.size, "range": "[-1, 1]",
            "i3d_bn_eps": config.i3d_bn_eps if config.backend == "i3d-400" else None}


def compute_fvd(videos: VideoSet, reference: VideoSet, *, config: FVDConfig = FVDConfig(),
                weights_path: str | Path | None = None, allow_unverified: bool = False, device: str = "cpu",
                force_small_set: bool = False, cache_dir: Path | None = None,
                sharding: Any = None) -> MetricResult:
    """FVD of ``videos`` against ``reference`` under ``config``.

    ``sharding`` (a :class:`~.sharding.Sharding`): extract the clip features on Dask workers, one task per video
    (the same value as the serial run); None or ``Sharding()`` extracts them in this process.
    """
    from dicetalk_bench.metrics.i3d import load_i3d

    if not force_small_set:
        _precheck_clips(videos, reference, config)
    model, record = load_i3d(config.backend, weights_path, allow_unverified=allow_unverified, device=device,
                             bn_eps=config.i3d_bn_eps)
    manifest = reference.manifest_hash()
    key = {"metric": "fvd-clips", "manifest": manifest, "weights_sha256": record["sha256"]} | _protocol_key(config)
    hit = None
    if cache_dir is not None:
        cpath = _cache.cache_file(cache_dir, "fvd", key)
        hit = _cache.load_features(cpath, key)
    sets = [videos] if hit is not None else [videos, reference]
    if sharding is not None and sharding.enabled:
        spec = I3DExtractor(record["file"], allow_unverified, device, config)
        extracted = sharded_clip_features(spec, sets, sharding)
    else:
        extracted = [set_clip_features(model, vs, config, device) for vs in sets]
    gen_feats, gen_fail = extracted[0]
    if hit is None:
        ref_feats, ref_fail = extracted[1]
        if cache_dir is not None:
            _cache.save_features(cpath, key, ref_feats, ref_fail)
    else:
        ref_feats, ref_fail = hit
    gen = stack_features(gen_feats, dim=FEATURE_DIM)
    ref = stack_features(ref_feats, dim=FEATURE_DIM)
    if len(gen) < 2 or len(ref) < 2:
        raise SmallSetError(f"FVD: need at least 2 clips per set; got {len(gen)} generated clips from "
                            f"{videos.root} ({len(gen_fail)} videos failed) and {len(ref)} reference clips from "
                            f"{reference.root}")
    small = min(len(gen), len(ref)) < config.min_clips
    if small and not force_small_set:
        raise SmallSetError(
            f"FVD: {len(gen)} generated and {len(ref)} reference clips; at least {config.min_clips} per set are "
            f"needed for a full-rank 400-d covariance (StyleGAN-V uses 2048). Use more videos or clips_per_video, or "
            f"pass --force-small-set to compute it anyway (recorded in the result)")
    s_gen, s_ref = FeatureStats.from_features(gen), FeatureStats.from_features(ref)
    raw = frechet_distance_raw(s_gen.mean(), s_gen.cov(), s_ref.mean(), s_ref.cov())
    if raw < 0:
        logger.info("FVD raw value %.6g < 0 from round-off; reported as 0", raw)
    protocol = _protocol_key(config) | {
        "embedding": "Kinetics-400 logits averaged over time",
        "n_reference_clips": int(len(ref)), "n_reference_videos": len(ref_feats),
        "reference_failed_clips": sorted(ref_fail), "reference_manifest_sha256": manifest,
        "covariance_ddof": 1, "frechet": "float64 eigh (TF-GAN trace_sqrt_product)", "forced_small_set": bool(small),
        "failure_policy": EXCLUDE}
    # paths, failure reasons and the raw value describe this run, not the protocol (they do not change the number)
    run_extra = {"videos_dir": str(videos.root), "reference_dir": str(reference.root),
                 "reference_failures": dict(ref_fail), "n_generated_clips": int(len(gen)), "raw_value": raw,
                 "failure_counts": gen_fail.counts()}
    return MetricResult(key=FVD, value=max(raw, 0.0), higher_is_better=False, n_videos=len(gen_feats),
                        n_clips=int(len(gen)), protocol=protocol, extractors=(record,),
                        extra=run_extra, features=gen_feats, reference_features=ref_feats,
                        **gen_fail.result_fields(videos.clip_ids))


def _precheck_clips(videos: VideoSet, reference: VideoSet, config: FVDConfig) -> None:
    """Refuse a too-small set from the container frame counts, before any network runs."""
    from dicetalk_bench.metrics.fid import probed_frame_counts

    for vs in (videos, reference):
        counts = probed_frame_counts(vs)
        if counts is None:
            continue
        clips = sum(min(config.clips_per_video, max(0, n - config.clip_length + 1)) for n in counts)
        if clips < config.min_clips:
            raise SmallSetError(
                f"FVD: {vs.root} gives about {clips} clips of {config.clip_length} frames; at least "
                f"{config.min_clips} per set are needed for a full-rank 400-d covariance (StyleGAN-V uses 2048). "
                f"Use more videos or clips_per_video, or pass --force-small-set (recorded in the result)")


def score_fvd(request: ScoreRequest) -> MetricResult:
    """Registry entry for ``fvd``. Options: fvd.backend, fvd.clip_length, fvd.clips_per_video, fvd.resize,
    fvd.frame_geometry, fvd.i3d_bn_eps (i3d-400 backend only), fvd.size."""
    if request.reference is None:
        raise ValueError("FVD needs a reference set (--reference DIR)")
    backend = request.option(FVD, "backend", "i3d-400")
    eps_option = request.option(FVD, "i3d_bn_eps")
    if eps_option is not None and backend != "i3d-400":
        raise ValueError(f"fvd.i3d_bn_eps applies to the i3d-400 backend only; the {backend} file fixes its own "
                         f"BatchNorm epsilon (drop the option)")
    try:
        eps = DEFAULT_I3D_BN_EPS if eps_option is None else float(eps_option)
    except ValueError:
        raise ValueError(f"fvd.i3d_bn_eps={eps_option!r}: expected a number such as 1e-5 or 1e-3") from None
    config = FVDConfig(backend=backend,
                       clip_length=int(request.option(FVD, "clip_length", 16)),
                       clips_per_video=int(request.option(FVD, "clips_per_video", 1)),
                       resize=request.option(FVD, "resize", "tf1"),
                       frame_geometry=request.option(FVD, "frame_geometry", "squash"),
                       i3d_bn_eps=eps,
                       size=int(request.option(FVD, "size", CLIP_SIZE)),
                       batch_size=min(request.batch_size, 8), seed=request.seed)
    return compute_fvd(list_videos(request.videos), list_videos(request.reference), config=config,
                       weights_path=request.weights.get(config.backend), allow_unverified=request.allow_unverified,
                       device=request.device, force_small_set=request.force_small_set, cache_dir=request.cache_dir,
                       sharding=request.sharding())
