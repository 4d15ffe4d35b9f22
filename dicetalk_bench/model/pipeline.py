"""Inference: a trained checkpoint + reference image + Whisper states + emotion prior -> video frames.

Steps (release pipeline, model.md §4): encode the reference (VAE mode latent and CLIP token); per output frame
take its 10-state Whisper window; start from noise at sigma_max; at each Euler step denoise the whole video as
windows of ``window`` frames whose tiling shifts by ``shift`` frames per step (wrapping around), each window
evaluated with three branches (uncond / image-only / full) combined by :func:`three_branch_guidance`; decode
the latents ``decode_chunk`` frames at a time.

Frame rate: this implementation generates one frame per 25-fps output frame directly (no RIFE interpolation
stage); a checkpoint trained on 12.5-fps windows (``frame_stride`` 2) is then run at twice its training rate,
which is logged. Train with ``frame_stride: 1`` for a matched 25-fps model.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from .config import get_model_config
from .dataset import box_masks, whisper_windows
from .network import DiceTalkNetwork
from .sampling import (edm_v_preconditioning, karras_sigmas, sample_euler, seed_from_id, shifted_window_denoiser,
                       three_branch_guidance)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleConfig:
    steps: int = 25  # release: 25 Euler steps
    image_scale: float = 3.0  # release min/max_appearance_guidance_scale
    condition_scale: float = 6.0  # release audio_guidance_scale (audio + emotion)
    window: int = 25
    shift: int = 7
    decode_chunk: int = 10
    retrieval: bool = False  # release inference: attention aggregation over the bank


@dataclass
class LoadedModel:
    net: DiceTalkNetwork
    encoders: object
    priors: dict
    records: dict
    train_config: dict
    resolution: int
    frame_stride: int = 1  # 25-fps frames per generated frame the weights were trained on (release: 2)
    provenance: dict = field(default_factory=dict)  # kind, label, frame_stride, file hashes (results record it)


def _checkpoint_provenance(folder: Path, state: dict) -> dict:
    if state.get("kind") == "converted-release":  # convert_release keeps the release's record and label
        return dict(state["release"], kind="converted-release", converted_folder=str(folder))
    return {"kind": "checkpoint", "label": "trained checkpoint", "folder": str(folder), "step": state.get("step"),
            "frame_stride": int(state["config"].get("frame_stride", 1))}


def load_model(path: str | Path, device: str | torch.device = "cpu", sources=None) -> LoadedModel:
    """Load whatever ``--checkpoint`` names for sampling: a training checkpoint, a run folder (its latest
    checkpoint), or an official release folder (``sources``: a :class:`~.release.ReleaseSources` for the SVD-xt,
    whisper-tiny and priors it does not hold). Every check runs here, before any sampling."""
    kind = ckpt.checkpoint_kind(path)
    if kind == "release":
        from .release import ReleaseSources, load_release

        rel = load_release(path, sources or ReleaseSources(), device)
        return LoadedModel(rel.net, rel.encoders, rel.priors, rel.records,
                           {"resolution": rel.cfg.sample_resolution, "frame_stride": rel.provenance["frame_stride"],
                            "model": rel.cfg.name}, rel.cfg.sample_resolution,
                           rel.provenance["frame_stride"], rel.provenance)
    folder = ckpt.latest_checkpoint(path) if kind == "run" else Path(path)
    return load_checkpoint_for_sampling(folder, device)


def load_checkpoint_for_sampling(folder: str | Path, device: str | torch.device = "cpu") -> LoadedModel:
    """Network, frozen encoders (from the SVD folder recorded in the checkpoint) and priors of a checkpoint."""
    from .svd import load_frozen_encoders

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
    net.eval()
    svd_path = Path(c.state["records"]["svd"]["file"])
    encoders = load_frozen_encoders(svd_path).to(device)
    return LoadedModel(net, encoders, c.priors, c.state["records"], c.state["config"],
                       int(c.state["config"]["resolution"]), int(c.state["config"].get("frame_stride", 1)),
                       _checkpoint_provenance(Path(folder), c.state))


def check_whisper(checkpoint_record: dict, features_record: dict) -> None:
    """Refuse audio features made by other Whisper weights than the checkpoint was trained on."""
    if checkpoint_record.get("sha256") != features_record.get("sha256"):
        raise ValueError(f"the audio encoder differs from the one the checkpoint was trained with: checkpoint "
                         f"{checkpoint_record.get('file')} (sha256 {checkpoint_record.get('sha256')}), features "
                         f"{features_record.get('file')} (sha256 {features_record.get('sha256')}); use the same "
                         "whisper-tiny weights")


@torch.no_grad()
def generate_frames(model: LoadedModel, reference: torch.Tensor, whisper_states: np.ndarray, prior: np.ndarray,
                    face_box_xyxy: np.ndarray, cfg: SampleConfig = SampleConfig(), seed: int = 0,
                    added_time_ids: tuple[float, float, float] = (12.5, 8.0, 16.0)) -> torch.Tensor:
    """reference (3, R, R) in [-1, 1]; whisper_states (T, 2, 5, 384); prior (1, 256) or (256,); face box in
    reference pixels -> (T, 3, R, R) frames in [-1, 1], one per 25-fps frame of the audio."""
    net, enc = model.net, model.encoders
    dev = next(net.parameters()).device
    t = len(whisper_states)
    n = max(t, cfg.window)  # windows need at least `window` frames; extra frames are cut after sampling
    idx = np.minimum(np.arange(n), t - 1)
    whisper = torch.from_numpy(whisper_windows(whisper_states, idx)).to(dev)[None]  # (1, n, 10, 5, 384)
    res = reference.shape[-1]
    mask = torch.from_numpy(box_masks(np.repeat(face_box_xyxy[None].astype(np.float32), n, 0), res, res)).to(dev)[None]
    prior_t = torch.as_tensor(np.asarray(prior, np.float32).reshape(1, 1, -1), device=dev).expand(1, n, -1)
    ref = reference.to(dev)[None]
    ref_latent = enc.encode_latents(ref).float()  # (1, 4, h, w)
    clip_tokens = enc.clip_embed(ref).float()
    time_ids = torch.tensor([added_time_ids], device=dev)
    h, w = ref_latent.shape[-2:]

    def window_denoise(x: torch.Tensor, sigma: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        c_skip, c_out, c_in, c_noise = edm_v_preconditioning(sigma.float())
        f = x.shape[1]
        outs = []
        for keep_ref, keep_cond in ((False, False), (True, False), (True, True)):
            r = ref_latent if keep_ref else torch.zeros_like(ref_latent)
            sample = torch.cat([c_in * x, r[:, None].expand(-1, f, -1, -1, -1)], dim=2)
            out = net(sample, c_noise.reshape(1), clip_tokens if keep_ref else torch.zeros_like(clip_tokens),
                      time_ids, whisper[:, frames], prior_t[:, frames], mask[:, frames],
                      drop_conditions=torch.tensor([not keep_cond], device=dev), retrieval=cfg.retrieval)
            outs.append(out.unet.sample.float())
        guided = three_branch_guidance(*outs, cfg.image_scale, cfg.condition_scale)
        return c_skip * x + c_out * guided

    sigmas = karras_sigmas(cfg.steps).float().to(dev)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    x = torch.randn((1, n, 4, h, w), generator=gen).to(dev) * sigmas[0]
    denoise = shifted_window_denoiser(window_denoise, sigmas, cfg.window, cfg.shift)
    latents = sample_euler(denoise, x, sigmas)[:, :t]
    return enc.decode(latents, cfg.decode_chunk)[0]


def generate(clip_row: dict, checkpoint: str | Path | LoadedModel, seed: int = 0, *,
             data_root: str | Path | None = None, emotion: str | None = None, cfg: SampleConfig = SampleConfig(),
             device: str = "cpu", sources=None) -> np.ndarray:
    """Frames (T, R, R, 3) uint8 for a preprocessed clip: one per ground-truth 25-fps frame, reference = its
    first frame, seed derived from the clip id (``seed_from_id(clip_id, seed)``), emotion from the row's label
    (or ``emotion``) via the priors stored in the checkpoint.

    ``checkpoint``: anything :func:`load_model` accepts (``sources`` locates what a release folder does not hold),
    or an already loaded model (what ``evaluate`` passes, so the weights are read and checked once)."""
    import pyarrow.parquet as pq
    import torch.nn.functional as F

    from dicetalk_bench import media
    from dicetalk_bench.preprocessing.audio_features import table_metadata

    root = Path(data_root or ".")
    model = checkpoint if isinstance(checkpoint, LoadedModel) else load_model(checkpoint, device, sources)
    audio_path = root / clip_row["audio_features"]
    table = pq.read_table(audio_path)
    check_whisper(model.records["whisper"], table_metadata(table.schema).get("whisper", {}))
    states = table.column("whisper").combine_chunks().to_numpy_ndarray()[: int(clip_row["n_frames"])]
    first = media.read_video(root / clip_row["video"], max_frames=1).frames[0]
    ref = torch.from_numpy(first).permute(2, 0, 1).float()[None] / 127.5 - 1
    ref = F.interpolate(ref, size=(model.resolution,) * 2, mode="bilinear", antialias=True, align_corners=False)[0]
    faces = pq.read_table(root / clip_row["faces"], columns=["mask_box_crop"])
    box = np.asarray(faces.column("mask_box_crop")[0].as_py(), np.float32) * model.resolution / clip_row["crop_size"]
    name = emotion or clip_row.get("emotion") or "neutral"
    if name not in model.priors:
        raise ValueError(f"emotion {name!r} has no prior in checkpoint {checkpoint}; stored: {sorted(model.priors)}")
    frames = generate_frames(model, ref, states, model.priors[name], box, cfg,
                             seed=seed_from_id(clip_row["clip_id"], seed))
    return ((frames.permute(0, 2, 3, 1).cpu().numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
