"""DICE-Talk generator training, readable top to bottom (``python -m dicetalk_bench.train``).

Recipe (the release has no training code, so the settings marked [inferred] in :class:`.train_step.TrainConfig` are
choices):

1. frozen encoders from the SVD-xt folder (VAE, CLIP image encoder); base UNet from its ``unet/`` (or the release
   files with ``init_official``, or any checkpoint folder with ``init_from``, e.g. a converted release);
   IP branches initialised from ``to_k``/``to_v``;
   the emotion condition: per-clip Gaussians of the trained embedder, z = mu + sigma * eps per step
   (``emotion_source: per-clip``, :mod:`.clip_emotions`), or the class-mean prior of the clip's label;
2. each step draws its windows, noise, noise levels and condition dropout from ``(seed, step)`` only;
3. loss = v-prediction MSE (equal to SVD's EDM-weighted denoising loss, see :func:`diffusion_loss`)
   + ``lambda_vq`` * VQ loss of the emotion bank (retrieval mode) + ``lambda_cls`` * cross-entropy of the latent
   emotion classifier on the mid-block features, masked where the clip has no label or its emotion was dropped;
4. condition dropout (classifier-free guidance): the reference (zero CLIP token and zero reference latent) and
   the audio + emotion conditions (zero features before the projectors, the release's null condition) are
   dropped independently;
5. AdamW with two learning rates: new modules (IP K/V, PoseGuider, AudioProj, EmotionModel) and the UNet;
6. checkpoints every ``checkpoint_every`` steps (:mod:`.checkpoint`); ``resume`` continues the same run exactly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from dicetalk_bench.config import config_hash, save_config, to_dict
from dicetalk_bench.weights.random_weights import random_spec_seed

from . import checkpoint as ckpt
from .checkpoint_kind import generator_checkpoint, is_release_folder
from .config import ModelConfig, get_model_config
from .dataset import WindowDataset, read_manifest, whisper_record
from .network import DiceTalkNetwork
from .train_step import (EMOTION_SOURCES, Run, TrainConfig, apply_update, backward_on,  # noqa: F401 (re-exported)
                         classifier_logits, classifier_loss, compute_gradients, diffusion_loss, ema_update,
                         init_ema, param_groups, step_seed, train_step, training_losses)

if TYPE_CHECKING:
    from .cost import MemoryEstimate

logger = logging.getLogger(__name__)


def _resolve_svd(cfg: TrainConfig) -> tuple[Path, dict]:
    from dicetalk_bench import weights

    seed = random_spec_seed(cfg.svd, option="svd")
    if seed is not None:
        logger.warning("svd=%s: a tiny RANDOM SVD-xt (VAE, image encoder, base UNet) for smoke runs; the checkpoint "
                       "records it as uncalibrated", cfg.svd)
        target = Path(cfg.out_dir) / "svd-random"
        if not (target / "model_index.json").is_file():
            from .svd import write_random_svd_xt

            write_random_svd_xt(target, seed)
        return target, {"key": "svd-xt", "file": str(target), "sha256": None, "calibrated": False,
                        "random_seed": seed}
    try:
        resolved = weights.resolve("svd-xt", cfg.svd, allow_unverified=cfg.allow_unverified)
    except weights.WeightsNotFoundError as exc:
        hint = "" if cfg.svd is not None else (" Or set svd=DIR (an SVD-xt diffusers folder); only for smoke runs "
                                                "without real weights: svd=random:SEED model=tiny.")
        raise FileNotFoundError(f"{exc}{hint}") from exc
    return resolved.path, resolved.record()


def _load_priors(cfg: TrainConfig) -> dict[str, np.ndarray]:
    from .priors import load_priors

    if cfg.priors_dir is not None:
        return load_priors(cfg.priors_dir)
    from dicetalk_bench import weights

    return load_priors(weights.resolve("dicetalk-priors", allow_unverified=cfg.allow_unverified).path)


def init_from_checkpoint(folder: str | os.PathLike, model_cfg: ModelConfig, device: torch.device
                         ) -> tuple[DiceTalkNetwork, dict]:
    """The network of a checkpoint folder (or a run's latest), with the weights it samples with (its EMA when it
    kept one), to start a new run from; returns it and the record of where it came from (including the
    checkpoint's Whisper record, which the training data must share)."""
    path = generator_checkpoint(folder, command="init_from")  # a run folder gives its latest checkpoint
    if is_release_folder(path):
        raise ValueError(f"init_from {folder} is a release folder; convert it first with python -m "
                         f"dicetalk_bench.convert_release {folder} OUT and pass init_from: OUT")
    c = ckpt.read_checkpoint(path)
    if c.state.get("model") != model_cfg.name:
        raise ValueError(f"init_from {path} holds a {c.state.get('model')!r} model, this run trains "
                         f"{model_cfg.name!r}; set model: {c.state.get('model')}")
    with torch.device("meta"):
        net = DiceTalkNetwork(model_cfg)
    net.to_empty(device=device)
    net.load_state_dict(c.model, strict=True)
    if c.ema is not None:
        net.load_state_dict(c.ema, strict=False)
    record = {"folder": str(path), "kind": c.state.get("kind", "checkpoint"), "step": c.step,
              "ema": c.ema is not None, "whisper": c.state["records"]["whisper"],
              "frame_stride": c.state["config"].get("frame_stride")}
    if "release" in c.state:
        record["label"] = c.state["release"].get("label")
    return net, record


def check_config(cfg: TrainConfig) -> None:
    """Settings that contradict each other or lack an input, refused before anything is built or written."""
    if cfg.init_from is not None and cfg.init_official:
        raise ValueError("init_from and init_official both choose the starting weights; set only one")
    if cfg.emotion_source not in EMOTION_SOURCES:
        raise ValueError(f"emotion_source {cfg.emotion_source!r}: expected one of {EMOTION_SOURCES}")
    if cfg.emotion_source == "per-clip" and cfg.embedder_dir is None:
        raise ValueError("emotion_source per-clip (the default) trains on the per-clip emotion embeddings of the "
                         "trained embedder: set embedder_dir to the output folder of python -m "
                         "dicetalk_bench.train_embedder (or emotion_source: class-mean with priors_dir)")
    if cfg.emotion_source == "per-clip" and not (Path(cfg.embedder_dir) / "embedder.json").is_file():
        raise ValueError(f"embedder_dir {cfg.embedder_dir}: no embedder.json; expected the output folder of "
                         "python -m dicetalk_bench.train_embedder")
    if cfg.init_from is not None and not Path(cfg.init_from).is_dir():
        raise ValueError(f"init_from {cfg.init_from}: no such folder")


def setup(cfg: TrainConfig, device: torch.device | str | None = None) -> Run:
    """Build the network, frozen encoders, optimiser and data of a run (fresh; see :func:`resume`)."""
    from .official import load_official_network
    from .svd import load_frozen_encoders
    from .unet import DiceTalkUNet, add_ip_adapters

    rank, world = _init_distributed()
    device = torch.device(device) if device is not None else default_device()
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} must be a multiple of the number of processes ({world})")
    check_config(cfg)
    model_cfg = get_model_config(cfg.model)
    torch.manual_seed(cfg.seed)
    svd_dir, svd_record = _resolve_svd(cfg)
    init_record = None
    if cfg.init_from is not None:
        net, init_record = init_from_checkpoint(cfg.init_from, model_cfg, device)
        official = {}
    elif cfg.init_official:
        net, official = load_official_network(model_cfg, allow_unverified=cfg.allow_unverified, device=device)
    else:
        unet = DiceTalkUNet.from_pretrained(svd_dir / "unet")
        add_ip_adapters(unet, model_cfg)
        net, official = DiceTalkNetwork(model_cfg, unet=unet), {}
    net.to(device).train()
    net.unet.set_activation_checkpointing(cfg.activation_checkpointing)
    encoders = load_frozen_encoders(svd_dir).to(device)
    records = read_manifest(cfg.data_root, cfg.split)
    whisper = {json.dumps(whisper_record(r.audio), sort_keys=True) for r in records}
    if len(whisper) != 1:
        raise ValueError(f"the clips of {cfg.data_root} were preprocessed with {len(whisper)} different Whisper "
                         "weights; re-run preprocessing so all use one encoder")
    data_whisper = json.loads(next(iter(whisper)))
    if init_record is not None and init_record["whisper"].get("sha256") != data_whisper.get("sha256"):
        raise ValueError(f"init_from {init_record['folder']} was made with other Whisper weights "
                         f"({init_record['whisper'].get('file')}) than the features of {cfg.data_root} "
                         f"({data_whisper.get('file')}); preprocess with the same whisper-tiny")
    if cfg.emotion_source == "per-clip":
        from .clip_emotions import embedder_priors, ensure_clip_emotions

        clip_emotions, emotion_record = ensure_clip_emotions(cfg.embedder_dir, records, data_whisper,
                                                             Path(cfg.out_dir))
        data = WindowDataset(records, embedder_priors(cfg.embedder_dir), num_frames=cfg.num_frames,
                             frame_stride=cfg.frame_stride, resolution=cfg.resolution, clip_emotions=clip_emotions)
    else:
        data = WindowDataset(records, _load_priors(cfg), num_frames=cfg.num_frames, frame_stride=cfg.frame_stride,
                             resolution=cfg.resolution)
        emotion_record = {"source": "class-mean"}
    optimizer = torch.optim.AdamW(param_groups(net, cfg), weight_decay=cfg.weight_decay)
    recs = {"whisper": data_whisper, "svd": svd_record, "official": official, "emotions": emotion_record}
    if init_record is not None:
        recs["init_from"] = init_record
    model = net
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    return Run(cfg, model_cfg, net, encoders, optimizer, data, recs, device, model=model, rank=rank, world=world)


def default_device() -> torch.device:
    """This process's GPU under torchrun (LOCAL_RANK), else the first GPU, else the CPU."""
    return torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}" if torch.cuda.is_available() else "cpu")


def check_memory(cfg: TrainConfig, device: torch.device | str | None = None) -> "MemoryEstimate":
    """Estimate one process's peak tensor memory (model/cost.py), log it, refuse when the device lacks it."""
    from .cost import check_memory_budget, estimate_training_memory

    device = torch.device(device) if device is not None else default_device()
    svd_dir, _ = _resolve_svd(cfg)
    estimate = estimate_training_memory(cfg, svd_dir, device_type=device.type,
                                        world=int(os.environ.get("WORLD_SIZE", "1")))
    check_memory_budget(estimate, device)
    return estimate


def _init_distributed() -> tuple[int, int]:
    """(rank, world size); joins the torchrun process group when WORLD_SIZE > 1 (NCCL on CUDA, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()




def _state(run: Run) -> dict:
    return {"config": to_dict(run.cfg), "config_hash": resume_hash(run.cfg), "model": run.model_cfg.name,
            "model_config": to_dict(run.model_cfg), "records": run.records, "history": run.history}


def resume_hash(cfg: TrainConfig) -> str:
    """Hash of the settings a resumed run must share (all but the step budget, checkpoint period, memory check)."""
    return config_hash(dataclasses.replace(cfg, steps=0, checkpoint_every=0, memory_check=True))


def save(run: Run) -> Path:
    return ckpt.save_checkpoint(run.cfg.out_dir, run.step, run.net, run.optimizer, _state(run), run.data.priors,
                                ema=run.ema)


def resume(run: Run) -> Run:
    """Continue from ``<out_dir>/checkpoints/latest`` if there is one; refuses a checkpoint of other settings."""
    folder = ckpt.latest_checkpoint(run.cfg.out_dir)
    if folder is None:
        logger.info("no checkpoint in %s: starting at step 0", run.cfg.out_dir)
        return run
    c = ckpt.read_checkpoint(folder)
    if c.state["config_hash"] != resume_hash(run.cfg):
        raise ValueError(f"checkpoint {folder} was written with other settings (config hash "
                         f"{c.state['config_hash']} vs {resume_hash(run.cfg)}); use a new out_dir or the same config")
    if c.state["records"]["whisper"] != run.records["whisper"]:
        raise ValueError(f"checkpoint {folder} was trained on features of other Whisper weights "
                         f"({c.state['records']['whisper']}) than {run.cfg.data_root} ({run.records['whisper']})")
    run.net.load_state_dict(c.model, strict=True)
    ckpt.load_optimizer_state(folder, run.optimizer)
    if run.cfg.ema_decay > 0:
        if c.ema is None:
            raise ValueError(f"checkpoint {folder} has no EMA weights but ema_decay={run.cfg.ema_decay}")
        run.ema = {k: v.to(run.device).clone() for k, v in c.ema.items()}
    run.step, run.history = c.step, list(c.state["history"])
    logger.info("resumed %s at step %d", folder, run.step)
    return run


def train(cfg: TrainConfig, *, resume_run: bool = False, device: torch.device | str | None = None,
          on_step: Callable[[Run, dict], None] | None = None) -> Run:
    """Run training to ``cfg.steps``; checkpoints every ``checkpoint_every`` steps and at the end.

    The configuration's inputs are checked first (:func:`check_config`, :func:`.train_checks.check_train_inputs`:
    nothing is built and no folder created when one is missing). With ``cfg.memory_check`` the peak memory is then
    estimated and the run refused (:class:`MemoryBudgetError`) when the device does not have it free."""
    from .train_checks import check_train_inputs

    check_config(cfg)
    check_train_inputs(cfg)
    if cfg.memory_check:
        check_memory(cfg, device)
    run = setup(cfg, device)
    if resume_run:
        resume(run)
    if run.rank == 0:
        save_config(cfg, cfg.out_dir, name="train_config.yaml")
    logger.info("training %s (%s) from step %d to %d on %s", cfg.model, cfg.out_dir, run.step, cfg.steps, run.device)
    while run.step < cfg.steps:
        terms = train_step(run)
        if (run.step % max(1, cfg.checkpoint_every) == 0 or run.step == cfg.steps) and run.rank == 0:
            save(run)
        if on_step is not None:
            on_step(run, terms)
        if not math.isfinite(terms["loss"]):
            raise FloatingPointError(f"loss became {terms['loss']} at step {run.step}; see {cfg.out_dir}")
    return run
