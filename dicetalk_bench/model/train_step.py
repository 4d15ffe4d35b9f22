"""One DICE-Talk training step and what it needs: the run's configuration, the losses, backward and update.

:mod:`.train_loop` builds a :class:`Run` and drives these steps (checkpoints, resume, the memory check);
:mod:`.cost` traces the same step on fake tensors to estimate its memory and FLOPs, so the step lives below both.
The recipe is described in :mod:`.train_loop`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import ModelConfig
from .dataset import WindowDataset, window_keys
from .network import DiceTalkNetwork
from .sampling import edm_v_preconditioning, v_target

@dataclass(frozen=True)
class TrainConfig:
    model: str = "paper"  # "paper" (the release's network, on SVD-xt) | "tiny" (smoke runs, with svd=random:SEED)
    data_root: Path = Path("data/preprocessed")  # preprocessing output folder (clips.parquet ...)
    split: str = "train"
    # emotion condition while training: "per-clip" (default): z = mu + sigma * eps per step from the per-clip
    # Gaussians of the trained embedder in ``embedder_dir`` (computed once, stored in <out_dir>/clip_emotions.*),
    # its class-mean priors stored with the checkpoints for sampling (mu at inference); "class-mean": every clip
    # gets the prior of its label from ``priors_dir``
    emotion_source: str = "per-clip"
    embedder_dir: Path | None = None  # output folder of python -m dicetalk_bench.train_embedder (per-clip)
    priors_dir: Path | None = None  # class-mean: folder of <emotion>.npy (release format); None: registry key
    # None: the registry's svd-xt; a diffusers folder; or random:SEED for a tiny random one (smoke runs, model=tiny),
    # recorded in the checkpoint as uncalibrated with its seed
    svd: str | None = None
    init_official: bool = False  # start from the release unet/pose_guider/audio_linear/emo_model files
    # start a new run from the weights of a checkpoint folder (e.g. python -m dicetalk_bench.convert_release
    # output, or another run); --resume still continues this run from its own latest checkpoint
    init_from: Path | None = None
    out_dir: Path = Path("runs/dicetalk-tiny")
    steps: int = 100
    batch_size: int = 1
    num_frames: int = 25  # frames per window (release: 25)
    frame_stride: int = 2  # 25 fps crops -> 12.5 fps windows (release step: 2)
    resolution: int = 64  # training pixels (paper: 512)
    lr_unet: float = 1e-5  # [inferred]: the release has no training code
    lr_new: float = 1e-4  # [inferred]
    weight_decay: float = 1e-2
    lambda_vq: float = 1.0
    lambda_cls: float = 0.05  # [inferred] 0.01-0.1
    p_drop_reference: float = 0.05  # [inferred] 5-10 %
    p_drop_conditions: float = 0.05
    log_sigma_mean: float = 0.7  # log-normal noise levels; SVD fine-tuning practice [inferred]
    log_sigma_std: float = 1.6
    retrieval: bool = True  # VQ retrieval while training (VQ loss active); release inference uses aggregation
    added_time_ids: tuple[float, float, float] = (12.5, 8.0, 16.0)  # fps, motion bucket, expression bucket
    seed: int = 0
    checkpoint_every: int = 50
    bf16: bool = False  # autocast on CUDA
    activation_checkpointing: bool = False
    train_unet: bool = True  # False: freeze the SVD UNet, train only the new modules (24 GB cards)
    allow_unverified: bool = False
    ema_decay: float = 0.0  # exponential moving average of the trainable weights; 0 disables (e.g. 0.9999)
    memory_check: bool = True  # estimate the peak memory before starting and refuse when the device lacks it


EMOTION_SOURCES = ("per-clip", "class-mean")


def step_seed(seed: int, step: int) -> int:
    """Seed of everything random in training step ``step`` (noise, sigma, dropout, data)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{step}".encode()).digest()[:8], "little") & ((1 << 63) - 1)


def diffusion_loss(prediction: torch.Tensor, latents: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor
                   ) -> torch.Tensor:
    """v-prediction MSE. With D = c_skip x + c_out F, the EDM loss lambda(sigma) |D - x0|^2 with
    lambda = (sigma^2 + 1) / sigma^2 equals |F - v|^2 exactly since lambda c_out^2 = 1."""
    return F.mse_loss(prediction.float(), v_target(latents, noise, sigma).float())


def classifier_loss(logits: torch.Tensor, labels: torch.Tensor, labelled_total: torch.Tensor | None = None,
                    world: int = 1) -> torch.Tensor:
    """Cross-entropy over rows with label >= 0 (0, with a graph, when none is labelled).

    Under DDP (``world`` processes, which average gradients) pass ``labelled_total``, the labelled rows of the
    global batch: each process then contributes ``world * sum / total``, so the averaged gradient is that of the
    mean over the whole batch even when processes hold different numbers of labelled rows.
    """
    valid = labels >= 0  # no boolean indexing: the shape must not depend on the data (memory tracing)
    per_row = F.cross_entropy(logits.float(), labels.clamp(min=0), reduction="none")
    total = valid.sum() if labelled_total is None else labelled_total
    return (per_row * valid).sum() * world / total.clamp(min=1)


def param_groups(net: DiceTalkNetwork, cfg: TrainConfig) -> list[dict]:
    """AdamW groups: new modules at ``lr_new`` (IP K/V, PoseGuider, AudioProj, EmotionModel), the UNet at
    ``lr_unet``; with ``train_unet`` False the UNet is frozen (requires_grad off) and its group is empty."""
    new, base = [], []
    for name, p in net.named_parameters():
        if not name.startswith("unet.") or ".processor." in name:
            new.append(p)
        else:
            p.requires_grad_(cfg.train_unet)
            if cfg.train_unet:
                base.append(p)
    return [{"params": new, "lr": cfg.lr_new, "name": "new"}, {"params": base, "lr": cfg.lr_unet, "name": "unet"}]


@dataclass
class Run:
    """Everything a training run holds; built by :func:`setup`."""

    cfg: TrainConfig
    model_cfg: ModelConfig
    net: DiceTalkNetwork
    encoders: object
    optimizer: torch.optim.Optimizer
    data: WindowDataset
    records: dict
    device: torch.device
    step: int = 0
    history: list = field(default_factory=list)
    model: torch.nn.Module | None = None  # ``net`` or its DistributedDataParallel wrapper
    rank: int = 0
    world: int = 1
    ema: dict | None = None  # name -> EMA tensor of each trainable parameter (cfg.ema_decay > 0)
    bf16_autocast: bool | None = None  # None: cfg.bf16 on CUDA (the memory tracer sets it on its fake CPU run)

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = self.net
        if self.bf16_autocast is None:
            self.bf16_autocast = bool(self.cfg.bf16 and self.device.type == "cuda")


def training_losses(run: Run, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """All loss terms of one batch; randomness comes from the global RNG (seeded per step by the caller)."""
    cfg, net, enc, dev = run.cfg, run.net, run.encoders, run.device
    frames = batch["frames"].to(dev)  # (B, F, 3, R, R) in [-1, 1]
    b, f = frames.shape[:2]
    latents = enc.encode_latents(frames.flatten(0, 1)) * enc.scaling_factor
    latents = latents.reshape(b, f, *latents.shape[1:]).float()
    reference = batch["reference"].to(dev)
    ref_latent = enc.encode_latents(reference).float()  # unscaled mode, as SVD conditions
    clip_tokens = enc.clip_embed(reference).float()

    # per-sample randomness from per-sample seeds: a sample draws the same noise whichever process holds it
    seeds = batch.get("sample_seed")
    if seeds is None:
        seeds = torch.randint(0, 2**62, (b,))
    gens = [torch.Generator().manual_seed(int(x)) for x in seeds]
    drop_ref = torch.stack([torch.rand((), generator=g) for g in gens]).to(dev) < cfg.p_drop_reference
    drop_cond = torch.stack([torch.rand((), generator=g) for g in gens]).to(dev) < cfg.p_drop_conditions
    ref_latent = ref_latent * (~drop_ref).float()[:, None, None, None]
    clip_tokens = clip_tokens * (~drop_ref).float()[:, None, None]

    z = torch.stack([torch.randn((), generator=g) for g in gens]).to(dev)
    sigma = torch.exp(cfg.log_sigma_mean + cfg.log_sigma_std * z)
    noise = torch.stack([torch.randn(latents.shape[1:], generator=g) for g in gens]).to(dev)
    s = sigma.view(b, 1, 1, 1, 1)
    c_skip, c_out, c_in, c_noise = edm_v_preconditioning(s)
    sample = torch.cat([c_in * (latents + s * noise), ref_latent[:, None].expand(-1, f, -1, -1, -1)], dim=2)
    time_ids = torch.tensor([cfg.added_time_ids] * b, device=dev)

    prior = batch["prior"]
    if "prior_sigma" in batch:  # per-clip Gaussians: z = mu + sigma * eps, eps from the sample's own seed
        from .clip_emotions import sample_clip_emotion

        prior = sample_clip_emotion(prior, batch["prior_sigma"], seeds)
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=run.bf16_autocast):
        out = run.model(sample, c_noise.flatten(), clip_tokens, time_ids, batch["whisper"].to(dev), prior.to(dev),
                  batch["face_mask"].to(dev), drop_conditions=drop_cond, retrieval=cfg.retrieval)
        logits = classifier_logits(net.emo_model.classifier, out.unet.mid_features, seeds, f)
    labels = batch["label"].to(dev).masked_fill(drop_cond, -1).repeat_interleave(f)
    terms = {
        "diffusion": diffusion_loss(out.unet.sample, latents, noise, s),
        "vq": out.emotion.vq_loss.float(),
        "cls": classifier_loss(logits, labels, *_global_count(labels >= 0, run.world)),
    }
    terms["loss"] = terms["diffusion"] + cfg.lambda_vq * terms["vq"] + cfg.lambda_cls * terms["cls"]
    return terms


def _global_count(mask: torch.Tensor, world: int) -> tuple[torch.Tensor | None, int]:
    """(count of True over all processes, world) under DDP; (None, 1) in a single process."""
    if world == 1:
        return None, 1
    import torch.distributed as dist

    count = mask.sum().to(torch.float32)
    dist.all_reduce(count)
    return count, world


def classifier_logits(classifier: torch.nn.Module, features: torch.Tensor, seeds, frames: int) -> torch.Tensor:
    """Logits of the latent emotion classifier on (B * F, C, h, w) features; in training its dropout masks come
    from each sample's own seed, so a sample gets the same masks whichever DDP process holds it."""
    if not classifier.training:
        return classifier(features)
    chunks = []
    devices = [features.device] if features.device.type == "cuda" else []
    for i, seed in enumerate(seeds):
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed((int(seed) * 2654435761 + 97) % (1 << 62))
            chunks.append(classifier(features[i * frames:(i + 1) * frames]))
    return torch.cat(chunks)


def compute_gradients(run: Run, step: int) -> dict[str, torch.Tensor]:
    """Loss terms of step ``step`` on this process's share of the batch, gradients in ``.grad`` (averaged over
    processes by DDP). Sample i of the global batch is drawn from ``(seed, step, i)`` whichever process holds it."""
    torch.manual_seed(step_seed(run.cfg.seed, step))
    keys = window_keys(run.data.records, run.data.span, run.cfg.batch_size, run.cfg.seed, step)
    mine = list(range(run.rank, len(keys), run.world))
    batch = run.data.batch([keys[i] for i in mine])
    base = step_seed(run.cfg.seed, step)
    batch["sample_seed"] = torch.tensor([(base + i) % (1 << 62) for i in mine])
    return backward_on(run, batch)


def backward_on(run: Run, batch: dict) -> dict[str, torch.Tensor]:
    """Loss terms of ``batch`` with fresh gradients in ``.grad`` (also what the memory tracer runs)."""
    with torch.enable_grad():  # independent of the caller's grad mode (some loaders switch it off globally)
        terms = training_losses(run, batch)
        run.optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
    return terms


def apply_update(run: Run) -> None:
    """The optimiser step and the EMA update (the EMA starts from the weights before the first step)."""
    if run.cfg.ema_decay > 0 and run.ema is None:
        run.ema = init_ema(run.net)
    run.optimizer.step()
    if run.ema is not None:
        ema_update(run.ema, run.net, run.cfg.ema_decay)


def init_ema(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """EMA state: a detached copy of every trainable parameter, keyed by its ``named_parameters`` name."""
    return {name: p.detach().clone() for name, p in net.named_parameters() if p.requires_grad}


@torch.no_grad()
def ema_update(ema: dict[str, torch.Tensor], net: torch.nn.Module, decay: float) -> None:
    """In place: ``ema <- decay * ema + (1 - decay) * param`` for every tracked parameter."""
    params = dict(net.named_parameters())
    for name, value in ema.items():
        value.lerp_(params[name].detach(), 1.0 - decay)


def train_step(run: Run) -> dict[str, float]:
    """One optimiser step at ``run.step + 1`` (and the EMA update); returns the loss terms as floats."""
    step = run.step + 1
    terms = compute_gradients(run, step)
    apply_update(run)
    run.step = step
    out = {k: float(v.detach()) for k, v in terms.items()}
    out["step"] = step
    run.history.append(out)
    return out
