"""What a training step will cost before it runs: peak memory and FLOPs, traced on fake tensors.

The estimate does not guess from formulas: it runs the real training step (:func:`train_step.training_losses`,
backward, AdamW step, EMA update; two steps, so the optimiser moments exist) inside torch's ``FakeTensorMode``,
where every tensor has a shape, dtype and storage size but no data, so the paper-size model costs nothing to
trace. :class:`LiveBytes` (a ``TorchDispatchMode``) adds up the storage of every tensor an operator returns and
subtracts it when the storage is freed; its high-water mark is the estimated peak of tensor memory, i.e. what
``torch.cuda.max_memory_allocated`` reports on a GPU.

What is not in the estimate (stated in docs/model.md): the CUDA context and kernels (~0.3-1 GiB), allocator
fragmentation, DDP's gradient buckets (about one more copy of the trainable gradients on several GPUs), and host
memory of the data loader. bf16 autocast is traced with the CPU autocast rules, which cast the same operator
families as CUDA's (matmul, conv, attention) to bf16. The fake trace uses the same attention kernel choice as
the CPU; on CUDA, memory-efficient attention keeps no (tokens x tokens) matrix either, so this holds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

logger = logging.getLogger(__name__)

GIB = float(1 << 30)


class MemoryBudgetError(RuntimeError):
    """The estimated peak of a run exceeds the memory its device has free."""


class LiveBytes(TorchDispatchMode):
    """Bytes of tensor storage alive now (``live``) and at most (``peak``) among the tensors operators returned.

    Storages are counted once (views share them) and released through a weak reference, so the count follows
    Python's and autograd's own lifetimes exactly. Tensors created before the mode was entered are not counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._refs: dict[int, weakref.ref] = {}

    def _add(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = id(storage)
        if key in self._refs and self._refs[key]() is storage:
            return
        n = int(storage.nbytes())

        def release(_ref: weakref.ref, key: int = key, n: int = n) -> None:
            self.live -= n
            if self._refs.get(key) is _ref:
                del self._refs[key]

        self._refs[key] = weakref.ref(storage, release)
        self.live += n
        self.peak = max(self.peak, self.live)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self._add(t)
        return out


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated tensor memory of one training process, in bytes.

    weights: network + frozen encoders once built; states: gradients, AdamW moments and EMA alive between steps;
    peak: the high-water mark over two full steps (the batch, forward activations, backward, optimiser update).
    """

    weights: int
    states: int
    peak: int
    per_process_batch: int
    resolution: int
    num_frames: int
    bf16: bool
    activation_checkpointing: bool

    @property
    def activations(self) -> int:
        """Peak minus weights and states: the batch, activations and the temporaries of backward and AdamW."""
        return max(0, self.peak - self.weights - self.states)

    def summary(self) -> str:
        return (f"estimated peak {self.peak / GIB:.2f} GiB per process (weights {self.weights / GIB:.2f}, gradients + "
                f"optimiser + EMA {self.states / GIB:.2f}, activations and temporaries {self.activations / GIB:.2f}; "
                f"batch {self.per_process_batch} x {self.num_frames} frames at {self.resolution} px, "
                f"bf16 {'on' if self.bf16 else 'off'}, activation checkpointing "
                f"{'on' if self.activation_checkpointing else 'off'})")


def _fake_batch(cfg: Any, b: int, audio_channels: int, prior_dim: int) -> dict[str, torch.Tensor]:
    """A batch with the shapes of :class:`dataset.WindowDataset` (``b`` samples) made of zeros."""
    f, r = cfg.num_frames, cfg.resolution
    return {
        "frames": torch.zeros(b, f, 3, r, r),
        "reference": torch.zeros(b, 3, r, r),
        "face_mask": torch.zeros(b, f, 3, r, r),
        "whisper": torch.zeros(b, f, 10, 5, audio_channels),
        "prior": torch.zeros(b, f, prior_dim),
        "label": torch.zeros(b, dtype=torch.long),
    }


def _build_from_configs(cfg: Any, svd_dir: Path) -> tuple[Any, Any]:
    """The network and frozen encoders of a run, built from the config files only (no weights read)."""
    from diffusers import AutoencoderKLTemporalDecoder
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from .config import get_model_config
    from .network import DiceTalkNetwork
    from .svd import FrozenEncoders
    from .unet import DiceTalkUNet, add_ip_adapters

    model_cfg = get_model_config(cfg.model)
    unet = DiceTalkUNet.from_config(DiceTalkUNet.load_config(svd_dir / "unet"))
    add_ip_adapters(unet, model_cfg)
    net = DiceTalkNetwork(model_cfg, unet=unet).train()
    net.unet.set_activation_checkpointing(cfg.activation_checkpointing)
    vae = AutoencoderKLTemporalDecoder.from_config(AutoencoderKLTemporalDecoder.load_config(svd_dir / "vae"))
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig.from_pretrained(svd_dir / "image_encoder"))
    encoders = FrozenEncoders(vae=vae.eval().requires_grad_(False), image_encoder=clip.eval().requires_grad_(False))
    return net, encoders


def trace_training(cfg: Any, svd_dir: str | os.PathLike, *, device_type: str = "cpu", world: int = 1, steps: int = 2,
                   inside: Callable[[], Any] | None = None) -> tuple[MemoryEstimate, Any]:
    """Run ``steps`` training steps of ``cfg`` (a ``TrainConfig``) on fake tensors, as they would run on a
    ``device_type`` device ("cuda": bf16 autocast when ``cfg.bf16`` and AdamW's multi-tensor path, torch's default
    there; "cpu": neither). Returns the estimate and the value of ``inside()`` (e.g. a ``FlopCounterMode``,
    entered around the last step), or None."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    from .config import get_model_config
    from .train_step import Run, apply_update, backward_on, param_groups

    b = max(1, cfg.batch_size // max(1, world))
    model_cfg = get_model_config(cfg.model)
    on_cuda = device_type == "cuda"
    counter = LiveBytes()
    extra = inside() if inside is not None else None
    with FakeTensorMode(allow_non_fake_inputs=True), counter:
        net, encoders = _build_from_configs(cfg, Path(svd_dir))
        optimizer = torch.optim.AdamW(param_groups(net, cfg), weight_decay=cfg.weight_decay, foreach=on_cuda)
        weights = counter.live
        trainable = sum(p.numel() * p.element_size() for p in net.parameters() if p.requires_grad)
        run = Run(cfg, model_cfg, net, encoders, optimizer, None, {}, torch.device("cpu"),
                  bf16_autocast=bool(cfg.bf16 and on_cuda))
        batch = _fake_batch(cfg, b, model_cfg.audio.channels, model_cfg.emotion.prior_dim)
        batch["sample_seed"] = list(range(b))  # plain ints: training_losses seeds one generator per sample
        batch_bytes = counter.live - weights
        states = 0
        for step in range(steps):
            with extra if extra is not None and step == steps - 1 else contextlib.nullcontext():
                backward_on(run, batch)  # the loss terms are dropped at once (graph freed by backward)
                apply_update(run)
            if step == 0:
                states = counter.live - weights - batch_bytes
        # DDP keeps its gradient buckets: one more copy of the trainable gradients on every process
        buckets = trainable if world > 1 else 0
        estimate = MemoryEstimate(weights=weights, states=states + buckets, peak=counter.peak + buckets,
                                  per_process_batch=b, resolution=cfg.resolution, num_frames=cfg.num_frames,
                                  bf16=bool(cfg.bf16 and on_cuda), activation_checkpointing=cfg.activation_checkpointing)
        del run, net, encoders, optimizer, batch
    return estimate, extra


def estimate_training_memory(cfg: Any, svd_dir: str | os.PathLike, *, device_type: str = "cpu",
                             world: int = 1) -> MemoryEstimate:
    """Estimated tensor memory of one of ``world`` processes of the run ``cfg`` on a ``device_type`` device
    (see the module docstring for what it covers)."""
    return trace_training(cfg, svd_dir, device_type=device_type, world=world)[0]


def training_flops(cfg: Any, svd_dir: str | os.PathLike) -> int:
    """FLOPs of one training step of the whole batch as torch's ``FlopCounterMode`` counts them (matmuls,
    convolutions, attention; two per multiply-add): frozen encoders' forward, the network's forward and backward
    (with the recomputation when activation checkpointing is on), traced on fake tensors."""
    from torch.utils.flop_counter import FlopCounterMode

    _, counter = trace_training(cfg, svd_dir, steps=1, inside=lambda: FlopCounterMode(display=False))
    return int(counter.get_total_flops())


# SVD-xt's published vae/ and image_encoder/ configs (stabilityai/stable-video-diffusion-img2vid-xt): the SD
# VAE layout and OpenCLIP ViT-H/14. Only for planning without the folder; a real folder's config.json wins.
SVD_XT_VAE_CONFIG = {"_class_name": "AutoencoderKLTemporalDecoder", "in_channels": 3, "out_channels": 3,
                     "down_block_types": ["DownEncoderBlock2D"] * 4, "block_out_channels": [128, 256, 512, 512],
                     "layers_per_block": 2, "latent_channels": 4, "sample_size": 768, "scaling_factor": 0.18215,
                     "force_upcast": True}
SVD_XT_IMAGE_ENCODER_CONFIG = {"model_type": "clip_vision_model", "hidden_size": 1280, "intermediate_size": 5120,
                               "num_hidden_layers": 32, "num_attention_heads": 16, "patch_size": 14, "image_size": 224,
                               "projection_dim": 1024, "hidden_act": "gelu", "layer_norm_eps": 1e-5}


def write_svd_xt_configs(target: str | os.PathLike) -> Path:
    """A weight-less SVD-xt folder (``unet/``, ``vae/``, ``image_encoder/`` config.json only) for estimating
    paper-size runs before downloading SVD; the UNet config is :data:`config.PAPER`'s."""
    import json

    from dicetalk_bench.fileutil import atomic_write_bytes

    from .config import PAPER
    from .unet import unet_kwargs

    target = Path(target)
    unet = {"_class_name": "UNetSpatioTemporalConditionModel", **unet_kwargs(PAPER)}
    for sub, conf in (("unet", unet), ("vae", SVD_XT_VAE_CONFIG), ("image_encoder", SVD_XT_IMAGE_ENCODER_CONFIG)):
        atomic_write_bytes(target / sub / "config.json", json.dumps(conf, indent=2).encode())
    return target


def free_device_memory(device: torch.device | str) -> int:
    """Bytes the device can still give: free CUDA memory (``mem_get_info``), or ``MemAvailable`` of the host."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def check_memory_budget(estimate: MemoryEstimate, device: torch.device | str, free_bytes: int | None = None) -> None:
    """Log the estimate; raise :class:`MemoryBudgetError` naming the fixes when it exceeds the free memory."""
    device = torch.device(device)
    free = free_device_memory(device) if free_bytes is None else int(free_bytes)
    logger.info("memory: %s; %s has %.2f GiB free", estimate.summary(), device, free / GIB)
    if estimate.peak > free:
        tips = []
        if not estimate.bf16 and device.type == "cuda":
            tips.append("bf16=true")
        if not estimate.activation_checkpointing:
            tips.append("activation_checkpointing=true")
        tips += ["train_unet=false (train only the new modules)", "a smaller batch_size, num_frames or resolution"]
        raise MemoryBudgetError(
            f"this run needs about {estimate.peak / GIB:.2f} GiB on {device} but only {free / GIB:.2f} GiB is free "
            f"({estimate.summary()}). Try: {', '.join(tips)}; or memory_check=false to start anyway.")

