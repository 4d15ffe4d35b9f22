"""Per-clip emotion Gaussians for generator training, so that training matches sampling.

The trained emotion embedder (``python -m dicetalk_bench.train_embedder``) maps a clip to N(mu, diag sigma^2) in
R^256. The generator is trained on a draw ``z = mu + sigma * eps`` of its clip's Gaussian at every step (the
reparameterisation of Kingma & Welling 2014) and sampled with a mean (the class-mean priors in P-mode, a reference
video's mu in V-mode), so the emotion branch sees the spread of embeddings it will meet at inference instead of
the eight class means only.

mu and sigma are computed once per training clip (``frames_per_clip`` evenly spaced frames, as the embedder's
priors were) and stored with the run in ``<out_dir>/clip_emotions.safetensors`` (tensors ``mu`` and ``sigma``,
(N, 256) float32; metadata: the clip ids in row order and the sha256 of the embedder weights), then reused when
the run is resumed. ``eps`` for a training sample comes from a generator seeded from that sample's seed alone
(:func:`emotion_seed`), so a step is reproducible whichever process holds the sample.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np
import torch

from dicetalk_bench.fileutil import atomic_path, sha256_file

from .dataset import ClipRecord, DatasetError

logger = logging.getLogger(__name__)

STORE_NAME = "clip_emotions.safetensors"


def emotion_seed(sample_seed: int) -> int:
    """Seed of the emotion draw of a training sample (independent of the sample's noise draws)."""
    return (int(sample_seed) * 0x9E3779B1 + 0x5EED) % (1 << 62)


def sample_clip_emotion(mu: torch.Tensor, sigma: torch.Tensor, sample_seeds: Iterable[int]) -> torch.Tensor:
    """z = mu + sigma * eps per sample: mu, sigma (B, F, D) (the clip's values repeated over the F frames of its
    window); eps (D,) ~ N(0, I) from ``emotion_seed(sample_seed)``, the same for every frame of a window."""
    eps = torch.stack([torch.randn(mu.shape[-1], generator=torch.Generator().manual_seed(emotion_seed(int(s))))
                       for s in sample_seeds])
    return mu + sigma * eps[:, None, :].to(device=mu.device, dtype=mu.dtype)


def embedder_priors(embedder_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """The class-mean priors the embedder exported (``<embedder_dir>/priors``): what sampling uses (mu)."""
    from .priors import load_priors

    folder = Path(embedder_dir) / "priors"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: embedder_dir must be the output folder of "
                                "python -m dicetalk_bench.train_embedder (it writes priors/ at the end)")
    names = tuple(sorted(p.stem for p in folder.glob("*.npy")))
    return load_priors(folder, names)


@torch.no_grad()
def compute_clip_emotions(embedder: torch.nn.Module, records: Sequence[ClipRecord], resolution: int,
                          frames_per_clip: int) -> tuple[np.ndarray, np.ndarray]:
    """mu and sigma (N, D) float32 of each clip: the embedder in eval mode on ``frames_per_clip`` evenly spaced
    face crops (resized to ``resolution``) and their Whisper states."""
    from .embedder_train import ClipStore, even_frames

    store = ClipStore(resolution, capacity=1)
    embedder.eval()
    mus, sigmas = [], []
    for rec in records:
        crops, states = store.get(rec)
        idx = even_frames(len(crops), frames_per_clip)
        out = embedder(torch.from_numpy(crops[idx])[None], torch.from_numpy(states[idx])[None])
        mus.append(out.mu[0].float().numpy())
        sigmas.append(torch.exp(0.5 * out.logvar[0]).float().numpy())
    return np.stack(mus), np.stack(sigmas)


def _read_store(path: Path) -> tuple[list[str], str, np.ndarray, np.ndarray]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        mu, sigma = f.get_tensor("mu").numpy(), f.get_tensor("sigma").numpy()
    return json.loads(meta.get("clip_ids", "[]")), meta.get("embedder_sha256", ""), mu, sigma


def ensure_clip_emotions(embedder_dir: str | os.PathLike, records: Sequence[ClipRecord], data_whisper: Mapping,
                         out_dir: Path) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """``{clip_id: (mu (D,), sigma (D,))}`` for every training clip and the record stored with the checkpoints.

    Reuses ``<out_dir>/clip_emotions.safetensors`` when it holds the same clips from the same embedder weights,
    else computes and writes it (atomically). Refuses an embedder trained on features of other Whisper weights."""
    from safetensors.torch import save_file

    from .embedder_train import load_embedder

    embedder_dir = Path(embedder_dir)
    embedder, meta = load_embedder(embedder_dir)
    if meta.get("whisper", {}).get("sha256") != data_whisper.get("sha256"):
        raise DatasetError(f"embedder {embedder_dir} was trained on features of other Whisper weights "
                           f"({meta.get('whisper', {}).get('file')}) than the training clips "
                           f"({data_whisper.get('file')}); use one whisper-tiny for both")
    weights_sha = sha256_file(embedder_dir / "embedder.safetensors")
    ids = [r.clip_id for r in records]
    store = Path(out_dir) / STORE_NAME
    if store.is_file() and _read_store(store)[:2] == (ids, weights_sha):
        _, _, mu, sigma = _read_store(store)
        logger.info("per-clip emotion Gaussians of %d clips read from %s", len(ids), store)
    else:
        cfg = meta["config"]
        mu, sigma = compute_clip_emotions(embedder, records, int(cfg["resolution"]), int(cfg["frames_per_clip"]))
        store.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(store) as tmp:
            save_file({"mu": torch.from_numpy(mu).contiguous(), "sigma": torch.from_numpy(sigma).contiguous()},
                      str(tmp), metadata={"clip_ids": json.dumps(ids), "embedder_sha256": weights_sha})
        logger.info("per-clip emotion Gaussians of %d clips computed with %s into %s", len(ids), embedder_dir, store)
    table = {cid: (mu[i], sigma[i]) for i, cid in enumerate(ids)}
    record = {"source": "per-clip", "embedder": str(embedder_dir), "embedder_sha256": weights_sha,
              "store": str(store), "n_clips": len(ids), "mean_sigma": float(np.mean(sigma))}
    return table, record
