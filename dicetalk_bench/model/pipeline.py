"""Inference: a trained checkpoint + reference image + Whisper states + emotion prior -> video frames.

Steps, as the DICE-Talk release samples (github.com/toto222/DICE-Talk: ``dice_talk.py``,
``src/pipelines/pipeline_dicetalk.py``; docs/model.md, "Sampling"):

1. **Frame rate.** *Release* mode (checkpoints trained with ``frame_stride`` 2, the release's ``step: 2``):
   one generated frame per two 25-fps audio frames (12.5 fps, fps id 12.5), so a 25-frame window spans 2 s; the
   decoded frames are then doubled with RIFE (:mod:`.rife`) to 2n - 1 frames at 25 fps. *Native* mode
   (``frame_stride`` 1): one generated frame per 25-fps frame, no interpolation. :func:`frame_rate_for` picks the
   mode from the checkpoint; ``SampleConfig.frame_rate`` overrides it.
2. Encode the reference (VAE mode latent, CLIP token); per generated frame take its 10-state Whisper window.
3. Append ``pad_frames`` (25) pad frames whose audio and emotion inputs are the null (all-zero) ones in all three
   guidance branches; reference token, reference latent and face mask are repeated.
4. Start from ``scaled reference latent + sigma_max * noise`` (the release's ``add_noise`` at t_max).
5. At each Euler step denoise the N + 25 frames as 25-frame windows placed by the release's shift rule
   (:func:`~.sampling.release_windows`); each window evaluates its three guidance branches (uncond / image-only /
   full), combined by :func:`~.sampling.three_branch_guidance`. ``window_batch`` windows share one network call
   (batch 3 x window_batch; the release runs one window per call): :mod:`.window_batch` picks the default.
6. Decode ``decode_chunk`` frames at a time, drop the pad frames, interpolate (release mode).

:func:`generate_frames` returns exactly one frame per 25-fps audio frame T in both modes. Release mode generates
n = ceil(T / 2) frames (25-fps frames 0, 2, 4, ...) and RIFE gives 2n - 1 frames; when T is even the last frame
(T - 1) repeats frame T - 2, the last generated one. The release itself generates floor(T / 2) frames and lets the
muxer cut the audio (docs/model.md, "Reproducing the release").
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from .checkpoint_kind import generator_checkpoint, is_release_folder
from .config import get_model_config
from .dataset import whisper_windows
from .network import DiceTalkNetwork
from .release_image import face_mask_image, soft_face_mask
from .sampling import (batched_window_denoiser, edm_v_preconditioning, karras_sigmas, release_windows, sample_euler,
                       seed_from_id, three_branch_guidance)
from .window_batch import measure_window_bytes, resolve_window_batch

logger = logging.getLogger(__name__)

FRAME_RATES = ("release", "native")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: 25-fps audio frames per generated frame in each mode.
FRAME_STEP = {"release": 2, "native": 1}
#: Release time ids: fps 12.5, motion bucket 8, expression bucket 16 (dice_talk.yaml).
RELEASE_TIME_IDS = (12.5, 8.0, 16.0)


@dataclass(frozen=True)
class SampleConfig:
    steps: int = 25  # release: 25 Euler steps
    image_scale: float = 3.0  # release min/max_appearance_guidance_scale
    condition_scale: float = 6.0  # release audio_guidance_scale (audio + emotion)
    window: int = 25  # release n_sample_frames (frames_per_batch)
    shift: int = 7  # release shift_offset
    pad_frames: int = 25  # null-condition frames appended (release: frames_per_batch)
    decode_chunk: int = 10
    retrieval: bool = False  # release inference: attention aggregation over the bank
    frame_rate: str | None = None  # "release" | "native"; None: from the checkpoint's frame_stride
    dtype: str = "fp32"  # network precision: fp32 | bf16 | fp16 (release: fp16; CUDA only)
    rife: str | None = None  # RIFE flownet.pkl (or its folder); None: the weights registry's places
    allow_unverified: bool = False  # accept RIFE weights without a pinned sha256
    window_batch: int | None = None  # windows per network call; None: from free CUDA memory, or 4 on the CPU


@dataclass
class LoadedModel:
    net: DiceTalkNetwork
    encoders: object
    priors: dict
    records: dict
    train_config: dict
    resolution: int
    rife: torch.nn.Module | None = None  # RIFE IFNet, needed in release mode
    frame_stride: int = 1  # 25-fps frames per generated frame the weights were trained on (release: 2)
    provenance: dict = field(default_factory=dict)  # kind, label, frame_stride, file hashes (results record it)
    window_bytes: dict = field(default_factory=dict)  # measured CUDA peak of one window's call, per window shape


def _checkpoint_provenance(folder: Path, state: dict) -> dict:
    if state.get("kind") == "converted-release":  # convert_release keeps the release's record and label
        return dict(state["release"], kind="converted-release", converted_folder=str(folder))
    return {"kind": "checkpoint", "label": "trained checkpoint", "folder": str(folder), "step": state.get("step"),
            "frame_stride": int(state["config"].get("frame_stride", 1))}


def load_model(path: str | Path, device: str | torch.device = "cpu", sources=None, dtype: str = "fp32") -> LoadedModel:
    """Load whatever ``--checkpoint`` names for sampling: a training checkpoint, a run folder (its latest
    checkpoint), or an official release folder (``sources``: a :class:`~.release.ReleaseSources` for the SVD-xt,
    whisper-tiny and priors it does not hold). Every check runs here, before any sampling. ``dtype``: the
    network's precision (``fp32``, ``bf16``, ``fp16``; see :func:`torch_dtype`)."""
    folder = generator_checkpoint(path, command="sampling")  # checkpoint_kind's table decides; a run -> its latest
    if is_release_folder(folder):
        from .release import ReleaseSources, load_release

        rel = load_release(folder, sources or ReleaseSources(), device)
        model = LoadedModel(rel.net, rel.encoders, rel.priors, rel.records,
                            {"resolution": rel.cfg.sample_resolution, "frame_stride": rel.provenance["frame_stride"],
                             "model": rel.cfg.name}, rel.cfg.sample_resolution,
                            frame_stride=rel.provenance["frame_stride"], provenance=rel.provenance)
        _cast_network(model, dtype, device)
        return model
    return load_checkpoint_for_sampling(folder, device, dtype)


def frame_rate_for(train_config: dict, requested: str | None = None) -> str:
    """``requested`` when given, else "release" for a checkpoint trained with ``frame_stride`` 2 and "native"
    for ``frame_stride`` 1. ValueError when the mode is unknown or the stride is missing or another value."""
    if requested is not None:
        if requested not in FRAME_RATES:
            raise ValueError(f"frame rate {requested!r}: expected one of {FRAME_RATES}")
        return requested
    stride = train_config.get("frame_stride")
    if stride is None:
        raise ValueError("the checkpoint records no training frame_stride; choose the sampling mode with "
                         "--frame-rate release (12.5 fps + RIFE) or --frame-rate native (25 fps)")
    if int(stride) not in (1, 2):
        raise ValueError(f"the checkpoint was trained with frame_stride {stride}; only 1 (native 25 fps) and 2 "
                         "(release 12.5 fps + RIFE) have a sampling mode; pass --frame-rate to choose one")
    return "release" if int(stride) == 2 else "native"


def torch_dtype(name: str, device: str | torch.device) -> torch.dtype:
    """torch dtype of ``name`` (fp32 | bf16 | fp16); fp16 is refused on the CPU (no fast kernels; use bf16)."""
    if name not in DTYPES:
        raise ValueError(f"dtype {name!r}: expected one of {sorted(DTYPES)}")
    if name == "fp16" and torch.device(device).type == "cpu":
        raise ValueError("--dtype fp16 needs a CUDA device (the CPU has no fp16 kernels for this network); "
                         "use --dtype bf16 or fp32 on the CPU")
    return DTYPES[name]


def load_checkpoint_for_sampling(folder: str | Path, device: str | torch.device = "cpu", dtype: str = "fp32"
                                 ) -> LoadedModel:
    """Network, frozen encoders (from the SVD folder recorded in the checkpoint) and priors of a checkpoint.

    The network and the CLIP image encoder run in ``dtype``; the VAE stays fp32.
    """
    from .svd import load_frozen_encoders

    torch_dtype(dtype, device)  # refuses fp16 on the CPU before anything loads
    c = ckpt.read_checkpoint(folder)
    cfg = get_model_config(c.state["model"])
    with torch.device("meta"):
        net = DiceTalkNetwork(cfg)
    net.to_empty(device=device)
    net.load_state_dict(c.model, strict=True)
    if c.ema is not None:  # sample with the averaged weights when the run kept them
        unexpected = sorted(set(c.ema) - set(dict(net.named_parameters())))
        if unexpected:
            raise ValueError(f"checkpoint {folder}: EMA tensors {unexpected[:3]} match no parameter of the network")
        net.load_state_dict(c.ema, strict=False)
    svd_path = Path(c.state["records"]["svd"]["file"])
    encoders = load_frozen_encoders(svd_path).to(device)
    model = LoadedModel(net, encoders, c.priors, c.state["records"], c.state["config"],
                        int(c.state["config"]["resolution"]),
                        frame_stride=int(c.state["config"].get("frame_stride", 1)),
                        provenance=_checkpoint_provenance(Path(folder), c.state))
    _cast_network(model, dtype, device)
    return model


def _cast_network(model: LoadedModel, dtype: str, device: str | torch.device) -> None:
    """The network and the CLIP image encoder in ``dtype`` (eval mode); the VAE stays fp32."""
    torch_type = torch_dtype(dtype, device)
    model.net.eval().to(dtype=torch_type)
    model.encoders.image_encoder.to(dtype=torch_type)


def attach_rife(model: LoadedModel, path: str | Path | None = None, *, allow_unverified: bool = False) -> None:
    """Load RIFE (registry key ``rife-hdv3``) onto the model's device and record its weights."""
    from .rife import load_rife

    dev = next(model.net.parameters()).device
    model.rife, record = load_rife(path, allow_unverified=allow_unverified, device=dev)
    model.records = {**model.records, "rife": record}


def check_whisper(checkpoint_record: dict, features_record: dict) -> None:
    """Refuse audio features made by other Whisper weights than the checkpoint was trained with."""
    if checkpoint_record.get("sha256") != features_record.get("sha256"):
        raise ValueError(f"the audio encoder differs from the one the checkpoint was trained with: checkpoint "
                         f"{checkpoint_record.get('file')} (sha256 {checkpoint_record.get('sha256')}), features "
                         f"{features_record.get('file')} (sha256 {features_record.get('sha256')}); use the same "
                         "whisper-tiny weights")


def generated_frame_count(n_frames: int, mode: str) -> int:
    """Frames the network generates for ``n_frames`` 25-fps audio frames: ceil(T / step) (step 2 or 1).
    ValueError when the audio is shorter than one generated frame."""
    step = FRAME_STEP[mode]
    if n_frames < step:
        raise ValueError(f"audio of {n_frames} 25-fps frame(s) is shorter than one generated frame in {mode} mode "
                         f"({step} frames = {step * 640} samples at 16 kHz)")
    return math.ceil(n_frames / step)


def expand_to_audio_frames(frames: torch.Tensor, n_frames: int) -> torch.Tensor:
    """Interpolated release-mode frames (2n - 1) -> exactly ``n_frames``: the last frame repeated when short."""
    if len(frames) > n_frames:
        return frames[:n_frames]
    if len(frames) < n_frames:
        frames = torch.cat([frames, frames[-1:].expand(n_frames - len(frames), *frames.shape[1:])])
    return frames


def _mask_tensor(face: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W) mask in [0, 1] from a (H, W) mask or a (4,) box x1, y1, x2, y2 in reference pixels (drawn with
    integer bounds, hard edges)."""
    face = np.asarray(face, np.float32)
    if face.shape == (4,):
        return face_mask_image(tuple(int(v) for v in face), width, height).astype(np.float32) / 255.0
    if face.shape != (height, width):
        raise ValueError(f"face mask of shape {face.shape}: expected a (4,) box or a ({height}, {width}) mask")
    return face


def _window_bytes(model: LoadedModel, windows_denoise, x: torch.Tensor, sigma: torch.Tensor,
                  frames: torch.Tensor) -> int:
    """Peak CUDA memory of one window's network call, measured once per model and latent window shape."""
    key = (tuple(x.shape[2:]), len(frames), str(next(model.net.parameters()).dtype))
    if key not in model.window_bytes:
        idx = frames.to(x.device)[None]
        model.window_bytes[key] = measure_window_bytes(lambda: windows_denoise(x[:, idx].transpose(0, 1), sigma, idx),
                                                       x.device)
    return model.window_bytes[key]


@torch.no_grad()
def generate_frames(model: LoadedModel, reference: torch.Tensor, whisper_states: np.ndarray, prior: np.ndarray,
                    face: np.ndarray, cfg: SampleConfig = SampleConfig(), seed: int = 0,
                    added_time_ids: tuple[float, float, float] | None = None) -> torch.Tensor:
    """Frames (T, 3, H, W) in [-1, 1], one per 25-fps frame of the audio.

    reference: (3, H, W) in [-1, 1], H and W multiples of 8; whisper_states: (T, 2, 5, 384), T 25-fps frames;
    prior: (1, 256) or (256,); face: (H, W) face mask in [0, 1] (e.g. :func:`~.release_image.soft_face_mask`) or
    a (4,) face-mask box in reference pixels. ``added_time_ids`` default: the training config's, with fps 12.5
    in release mode. Release mode needs ``model.rife`` (:func:`attach_rife`).
    """
    net, enc = model.net, model.encoders
    dev = next(net.parameters()).device
    dtype = next(net.parameters()).dtype
    mode = frame_rate_for(model.train_config, cfg.frame_rate)
    if mode == "release" and model.rife is None:
        raise ValueError("release frame rate (12.5 fps + RIFE) needs the RIFE weights (registry key rife-hdv3): "
                         "pass --rife PATH or use --frame-rate native")
    t = len(whisper_states)
    n = generated_frame_count(t, mode)
    total = n + cfg.pad_frames
    if total < cfg.window:
        raise ValueError(f"{n} frames + {cfg.pad_frames} pad frames do not fill one {cfg.window}-frame window")
    time_ids = tuple(added_time_ids or model.train_config.get("added_time_ids") or RELEASE_TIME_IDS)
    if mode == "release":
        time_ids = (RELEASE_TIME_IDS[0], *time_ids[1:])

    src = FRAME_STEP[mode] * np.arange(n)  # the 25-fps frame of each generated frame
    real = torch.from_numpy(whisper_windows(whisper_states, src))  # (n, 10, 5, 384)
    whisper = torch.cat([real, real.new_zeros((cfg.pad_frames, *real.shape[1:]))]).to(dev, dtype)[None]
    prior_row = torch.as_tensor(np.asarray(prior, np.float32).reshape(1, -1))
    prior_t = torch.cat([prior_row.expand(n, -1), prior_row.new_zeros(cfg.pad_frames, prior_row.shape[1])])
    prior_t = prior_t.to(dev, dtype)[None]  # pad frames: the null (all-zero) prior in every branch
    h_px, w_px = reference.shape[-2:]
    mask2d = torch.from_numpy(_mask_tensor(face, h_px, w_px)).to(dev, dtype)  # as 3 channels: the release's RGB mask
    ref = reference.to(dev)[None]
    ref_latent = enc.encode_latents(ref).float()  # (1, 4, h, w) posterior mode
    clip_tokens = enc.clip_embed(ref).to(dtype)
    h, w = ref_latent.shape[-2:]
    time_ids_t = torch.tensor([time_ids], device=dev, dtype=dtype)
    # per window, the branches (uncond, image-only, full) side by side on dim 0: rows 3k, 3k + 1, 3k + 2
    ref_in = torch.stack([torch.zeros_like(ref_latent[0]), ref_latent[0], ref_latent[0]]).to(dtype)
    clip_in = torch.cat([torch.zeros_like(clip_tokens), clip_tokens, clip_tokens])
    drop = torch.tensor([True, True, False], device=dev)

    def windows_denoise(xs: torch.Tensor, sigma: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """xs (K, 1, window, 4, h, w) latents of K windows, frames (K, window) -> denoised (K, 1, window, 4, h, w)."""
        c_skip, c_out, c_in, c_noise = edm_v_preconditioning(sigma.float())
        k, f = frames.shape
        noisy = (c_in * xs[:, 0]).to(dtype).repeat_interleave(3, dim=0)  # (3K, f, 4, h, w)
        sample = torch.cat([noisy, ref_in.repeat(k, 1, 1, 1)[:, None].expand(-1, f, -1, -1, -1)], dim=2)
        out = net(sample, c_noise.reshape(1).to(dtype), clip_in.repeat(k, 1, 1), time_ids_t.expand(3 * k, -1),
                  whisper[0, frames].repeat_interleave(3, dim=0), prior_t[0, frames].repeat_interleave(3, dim=0),
                  mask2d.expand(3 * k, f, 3, h_px, w_px), drop_conditions=drop.repeat(k),
                  retrieval=cfg.retrieval).unet.sample.float()
        out = out.reshape(k, 3, *out.shape[1:])
        guided = three_branch_guidance(out[:, 0], out[:, 1], out[:, 2], cfg.image_scale, cfg.condition_scale)
        return c_skip * xs + c_out * guided[:, None]

    sigmas = karras_sigmas(cfg.steps).float().to(dev)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn((1, total, 4, h, w), generator=gen).to(dev)
    x = ref_latent[:, None] * enc.scaling_factor + noise * sigmas[0]  # release: add_noise(ref latent, noise, t_max)
    first = release_windows(total, cfg.window, 0, cfg.shift)
    window_batch = resolve_window_batch(cfg.window_batch, dev, len(first),
                                        lambda: _window_bytes(model, windows_denoise, x, sigmas[0], first[0]))
    denoise = batched_window_denoiser(windows_denoise, sigmas, cfg.window, cfg.shift, window_batch)
    latents = sample_euler(denoise, x, sigmas)
    keep = min(total, math.ceil(n / cfg.decode_chunk) * cfg.decode_chunk)  # the release's chunks, pad dropped
    frames = enc.decode(latents[:, :keep], cfg.decode_chunk)[0, :n]
    if mode == "native":
        return frames
    from .rife import interpolate_frames

    doubled = interpolate_frames(model.rife, (frames + 1) / 2) * 2 - 1  # RIFE works in [0, 1]
    return expand_to_audio_frames(doubled, t)


def generate(clip_row: dict, checkpoint: str | Path | LoadedModel, seed: int = 0, *,
             data_root: str | Path | None = None, emotion: str | None = None, cfg: SampleConfig = SampleConfig(),
             device: str = "cpu", sources=None) -> np.ndarray:
    """Frames (T, R, R, 3) uint8 for a preprocessed clip: exactly one per ground-truth 25-fps frame in both frame
    rate modes (release mode: the last frame repeats the one before it when T is even; see the module docstring),
    reference = its first frame, seed derived from the clip id (``seed_from_id(clip_id, seed)``), emotion from
    the row's label (or ``emotion``) via the priors stored in the checkpoint. The face mask is the clip's first
    mask box drawn at the crop's size and LANCZOS-resized (soft edges), as the release draws its mask.

    ``checkpoint``: anything :func:`load_model` accepts (``sources`` locates what a release folder does not hold),
    or an already loaded model (what ``evaluate`` passes, so the weights are read and checked once)."""
    import pyarrow.parquet as pq
    import torch.nn.functional as F

    from dicetalk_bench import media
    from dicetalk_bench.preprocessing.audio_features import table_metadata

    root = Path(data_root or ".")
    model = checkpoint if isinstance(checkpoint, LoadedModel) else load_model(checkpoint, device, sources, cfg.dtype)
    if frame_rate_for(model.train_config, cfg.frame_rate) == "release" and model.rife is None:
        attach_rife(model, cfg.rife, allow_unverified=cfg.allow_unverified)
    audio_path = root / clip_row["audio_features"]
    table = pq.read_table(audio_path)
    check_whisper(model.records["whisper"], table_metadata(table.schema).get("whisper", {}))
    states = table.column("whisper").combine_chunks().to_numpy_ndarray()[: int(clip_row["n_frames"])]
    first = media.read_video(root / clip_row["video"], max_frames=1).frames[0]
    ref = torch.from_numpy(first).permute(2, 0, 1).float()[None] / 127.5 - 1
    ref = F.interpolate(ref, size=(model.resolution,) * 2, mode="bilinear", antialias=True, align_corners=False)[0]
    faces = pq.read_table(root / clip_row["faces"], columns=["mask_box_crop"])
    box = np.asarray(faces.column("mask_box_crop")[0].as_py(), np.float32)
    crop = int(clip_row["crop_size"])
    mask = soft_face_mask(tuple(int(v) for v in box), crop, crop, model.resolution, model.resolution)
    name = emotion or clip_row.get("emotion") or "neutral"
    if name not in model.priors:
        raise ValueError(f"emotion {name!r} has no prior in checkpoint {checkpoint}; stored: {sorted(model.priors)}")
    frames = generate_frames(model, ref, states, model.priors[name], mask, cfg,
                             seed=seed_from_id(clip_row["clip_id"], seed))
    return ((frames.permute(0, 2, 3, 1).cpu().numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)


class Sampler:
    """A checkpoint loaded once, generating many preprocessed clips (:meth:`generate_clip`).

    ``checkpoint``: anything :func:`load_model` accepts (``sources`` for a release folder); ``settings`` are
    :class:`SampleConfig` fields; ``seed`` is the run seed (each clip's seed is ``seed_from_id(clip_id, seed)``, so a
    clip's frames do not depend on which other clips run, in which order or on which worker). RIFE is loaded here
    too in release mode, so nothing is read from disk per clip but the clip's own inputs.
    """

    def __init__(self, checkpoint: str | Path, data_root: str | Path, *, settings: dict | None = None, seed: int = 0,
                 device: str = "cpu", sources=None) -> None:
        self.checkpoint = Path(checkpoint)
        self.data_root = Path(data_root)
        self.cfg = SampleConfig(**(settings or {}))
        self.seed = seed
        self.device = device
        self.model = load_model(checkpoint, device, sources, self.cfg.dtype)
        self.frame_rate = frame_rate_for(self.model.train_config, self.cfg.frame_rate)
        if self.frame_rate == "release" and self.model.rife is None:
            attach_rife(self.model, self.cfg.rife, allow_unverified=self.cfg.allow_unverified)

    def provenance(self) -> dict:
        """What results made with this sampler record: the checkpoint's kind, label and training frame stride, the
        sampling mode, the loader's record of the weights files and the pretrained records (SVD, Whisper, RIFE)."""
        import json

        prov = self.model.provenance
        return json.loads(json.dumps({"kind": prov.get("kind"), "label": prov.get("label"),
                                      "frame_stride": self.model.frame_stride, "frame_rate": self.frame_rate,
                                      "release": prov, "records": self.model.records}, default=str))

    def generate_clip(self, clip_row: dict, emotion: str | None = None) -> np.ndarray:
        """(T, R, R, 3) uint8 frames for one manifest row (see :func:`generate`)."""
        return generate(clip_row, self.model, self.seed, data_root=self.data_root, emotion=emotion, cfg=self.cfg,
                        device=self.device)


def load_sampler(spec) -> Sampler:
    """The split-generation loader (:class:`dicetalk_bench.model.split_generation.SamplerSpec` -> :class:`Sampler`)."""
    return Sampler(spec.checkpoint, spec.data_root, settings=dict(spec.settings), seed=spec.seed, device=spec.device,
                   sources=spec.sources)
