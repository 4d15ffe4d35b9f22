"""The emotion embedder's own training stage (V-mode), over the preprocessing outputs.

``python -m dicetalk_bench.train_embedder --config CONFIG.yaml [--resume] [key=value ...]``

Data: every labelled clip of ``split`` (MEAD: emotion names; unlabelled clips such as HDTF are left out) with its
face crops (``videos/<clip>.mp4``, resized to ``resolution``), its per-frame Whisper states
(``audio/<audio>.parquet``) and its speaker (the identity the contrastive loss must ignore). Step ``n`` draws
``clips_per_batch`` clips and ``frames_per_clip`` frames of each from ``(seed, n)`` alone, so a resumed run sees
the data an uninterrupted one would. Clips are drawn emotion-balanced (an emotion, then one of its clips), so
every batch has positives: the same emotion from other speakers.

Loss: :func:`emotion_embedder.embedder_loss` (supervised contrastive on the reparameterised samples + KL).
Outputs in ``out_dir``: checkpoints (``checkpoints/step_N/``, the generator's checkpoint format), and at the end
``priors/<emotion>.npy`` (release format: per-emotion mean of mu over the training clips, ``frames_per_clip``
evenly spaced frames each), ``embedder.safetensors`` + ``embedder.json`` (config, Whisper record, and the
nearest-prior accuracy on the held-out ``eval_split`` clips when there are any). Train the generator with
``embedder_dir: <out_dir>`` (per-clip embeddings; the priors are stored with its checkpoints for sampling).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from dicetalk_bench.config import config_hash, save_config, to_dict
from dicetalk_bench.fileutil import atomic_write_bytes

from . import checkpoint as ckpt
from .dataset import ClipRecord, DatasetError, read_manifest, whisper_record
from .emotion_embedder import EmbedderConfig, EmotionEmbedder, embedder_loss, emotion_priors
from .priors import PRIOR_EMOTIONS, save_priors

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbedderTrainConfig:
    data_root: Path = Path("data/preprocessed")  # preprocessing output (clips.parquet ...)
    split: str = "train"
    eval_split: str = "test"  # held-out speakers for the nearest-prior accuracy ("" to skip)
    out_dir: Path = Path("runs/embedder")
    steps: int = 300
    clips_per_batch: int = 16
    frames_per_clip: int = 8
    resolution: int = 64  # face crops are resized to this many pixels
    lr: float = 3e-4
    weight_decay: float = 1e-2
    seed: int = 0
    checkpoint_every: int = 100
    cache_clips: int = 512  # decoded clips kept in memory (LRU)
    embedder: EmbedderConfig = field(default_factory=EmbedderConfig)


@dataclass(frozen=True)
class LabelledClip:
    record: ClipRecord
    emotion: int  # index into PRIOR_EMOTIONS
    speaker: str


def labelled_clips(root: Path, split: str) -> list[LabelledClip]:
    """Clips of ``split`` with an emotion label, with their speaker; raises when none or no speaker column."""
    out = []
    for rec in read_manifest(root, split):
        if rec.emotion is None:
            continue
        if rec.emotion not in PRIOR_EMOTIONS:
            raise DatasetError(f"clip {rec.clip_id}: emotion {rec.emotion!r} is not one of {PRIOR_EMOTIONS}")
        if not rec.speaker:
            raise DatasetError(f"{root / 'clips.parquet'}: clip {rec.clip_id} has no speaker; the contrastive loss "
                               "needs identities")
        out.append(LabelledClip(rec, PRIOR_EMOTIONS.index(rec.emotion), rec.speaker))
    if not out:
        raise DatasetError(f"{root / 'clips.parquet'}: no clip of split {split!r} has an emotion label")
    return out


class ClipStore:
    """Decoded clips ((T, 3, R, R) float32 crops in [-1, 1], (T, 2, 5, 384) float32 Whisper states), LRU-cached."""

    def __init__(self, resolution: int, capacity: int):
        self.resolution, self.capacity = resolution, max(1, capacity)
        self._cache: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def get(self, rec: ClipRecord) -> tuple[np.ndarray, np.ndarray]:
        if rec.clip_id in self._cache:
            self._cache.move_to_end(rec.clip_id)
            return self._cache[rec.clip_id]
        import pyarrow.parquet as pq

        from dicetalk_bench import media

        video = media.read_video(rec.video).frames
        states = pq.read_table(rec.audio, columns=["whisper"]).column("whisper").combine_chunks().to_numpy_ndarray()
        n = min(len(video), len(states))
        if n == 0:
            raise DatasetError(f"clip {rec.clip_id}: {rec.video} has {len(video)} frames and {rec.audio} "
                               f"{len(states)} Whisper rows")
        crops = torch.from_numpy(np.ascontiguousarray(video[:n])).permute(0, 3, 1, 2).float() / 127.5 - 1
        if crops.shape[-1] != self.resolution:
            crops = F.interpolate(crops, size=(self.resolution, self.resolution), mode="bilinear", antialias=True,
                                  align_corners=False)
        item = (crops.numpy(), states[:n].astype(np.float32))
        self._cache[rec.clip_id] = item
        if len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return item


def batch_plan(clips: list[LabelledClip], cfg: EmbedderTrainConfig, step: int) -> list[tuple[int, np.ndarray]]:
    """(clip index, sorted frame indices) of each clip of step ``step``: a pure function of (seed, step)."""
    rng = np.random.default_rng([cfg.seed, step, 7])
    by_emotion: dict[int, list[int]] = {}
    for i, c in enumerate(clips):
        by_emotion.setdefault(c.emotion, []).append(i)
    emotions = sorted(by_emotion)
    plan = []
    for _ in range(cfg.clips_per_batch):
        members = by_emotion[emotions[int(rng.integers(len(emotions)))]]
        i = members[int(rng.integers(len(members)))]
        n = clips[i].record.n_frames
        k = min(cfg.frames_per_clip, n)
        plan.append((i, np.sort(rng.choice(n, size=k, replace=False))))
    return plan


def even_frames(n: int, k: int) -> np.ndarray:
    """``k`` evenly spaced frame indices of a clip of ``n`` frames (all of them when n <= k)."""
    return np.unique(np.linspace(0, n - 1, num=min(k, n)).round().astype(np.int64))


def make_batch(store: ClipStore, clips: list[LabelledClip], plan: list[tuple[int, np.ndarray]]
               ) -> dict[str, torch.Tensor]:
    """Crops (B, K, 3, R, R), states (B, K, 2, 5, 384), frame mask (B, K) for clips shorter than K, labels."""
    k = max(len(f) for _, f in plan)
    r = store.resolution
    crops = torch.zeros(len(plan), k, 3, r, r)
    states = torch.zeros(len(plan), k, 2, 5, 384)
    mask = torch.zeros(len(plan), k, dtype=torch.bool)
    speakers = sorted({clips[i].speaker for i, _ in plan})
    for b, (i, frames) in enumerate(plan):
        c, s = store.get(clips[i].record)
        frames = frames[frames < len(c)]
        crops[b, :len(frames)] = torch.from_numpy(c[frames])
        states[b, :len(frames)] = torch.from_numpy(s[frames])
        mask[b, :len(frames)] = True
    return {"crops": crops, "whisper_states": states, "frame_mask": mask,
            "emotion": torch.tensor([clips[i].emotion for i, _ in plan]),
            "identity": torch.tensor([speakers.index(clips[i].speaker) for i, _ in plan])}


@dataclass
class EmbedderRun:
    cfg: EmbedderTrainConfig
    embedder: EmotionEmbedder
    optimizer: torch.optim.Optimizer
    clips: list[LabelledClip]
    store: ClipStore
    whisper: dict
    step: int = 0
    history: list = field(default_factory=list)


def _resume_hash(cfg: EmbedderTrainConfig) -> str:
    return config_hash(dataclasses.replace(cfg, steps=0, checkpoint_every=0, cache_clips=0))


def _whisper_of(clips: list[LabelledClip], root: Path) -> dict:
    records = {json.dumps(whisper_record(c.record.audio), sort_keys=True) for c in clips}
    if len(records) != 1:
        raise DatasetError(f"the clips of {root} were preprocessed with {len(records)} different Whisper weights")
    return json.loads(records.pop())


def setup(cfg: EmbedderTrainConfig) -> EmbedderRun:
    clips = labelled_clips(Path(cfg.data_root), cfg.split)
    torch.manual_seed(cfg.seed)
    embedder = EmotionEmbedder(cfg.embedder)
    optimizer = torch.optim.AdamW(embedder.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return EmbedderRun(cfg, embedder, optimizer, clips, ClipStore(cfg.resolution, cfg.cache_clips),
                       _whisper_of(clips, Path(cfg.data_root)))


def train_step(run: EmbedderRun) -> dict[str, float]:
    step = run.step + 1
    batch = make_batch(run.store, run.clips, batch_plan(run.clips, run.cfg, step))
    run.embedder.train()
    out = run.embedder(batch["crops"], batch["whisper_states"], batch["frame_mask"],
                       generator=torch.Generator().manual_seed(run.cfg.seed * 1_000_003 + step))
    terms = embedder_loss(out, batch["emotion"], batch["identity"], run.cfg.embedder)
    run.optimizer.zero_grad(set_to_none=True)
    terms["loss"].backward()
    run.optimizer.step()
    run.step = step
    rec = {k: float(v.detach()) for k, v in terms.items()} | {"step": step}
    run.history.append(rec)
    return rec


def _state(run: EmbedderRun) -> dict:
    return {"step": run.step, "config": to_dict(run.cfg), "config_hash": _resume_hash(run.cfg),
            "history": run.history, "records": {"whisper": run.whisper}, "kind": "emotion-embedder"}


def resume(run: EmbedderRun) -> EmbedderRun:
    folder = ckpt.latest_checkpoint(run.cfg.out_dir)
    if folder is None:
        return run
    c = ckpt.read_checkpoint(folder)
    if c.state.get("config_hash") != _resume_hash(run.cfg):
        raise ValueError(f"checkpoint {folder} was written with other settings; use a new out_dir or the same config")
    if c.state["records"]["whisper"] != run.whisper:
        raise ValueError(f"checkpoint {folder} was trained on features of other Whisper weights")
    run.embedder.load_state_dict(c.model, strict=True)
    ckpt.load_optimizer_state(folder, run.optimizer)
    run.step, run.history = c.step, list(c.state["history"])
    logger.info("resumed %s at step %d", folder, run.step)
    return run


def clip_batches(store: ClipStore, clips: list[LabelledClip], frames: int, batch: int = 16):
    """Every clip once, ``frames`` evenly spaced frames each (for the priors and the evaluation)."""
    for a in range(0, len(clips), batch):
        plan = [(i, even_frames(clips[i].record.n_frames, frames)) for i in range(a, min(a + batch, len(clips)))]
        yield make_batch(store, clips, plan)


def nearest_prior_accuracy(embedder: EmotionEmbedder, priors: dict[str, np.ndarray], batches) -> tuple[float, int]:
    """Share of clips whose mu is closest (cosine) to the prior of their own emotion; (accuracy, n clips)."""
    names = sorted(priors)
    table = F.normalize(torch.from_numpy(np.concatenate([priors[n] for n in names])).float(), dim=-1)
    right = total = 0
    embedder.eval()
    with torch.no_grad():
        for b in batches:
            mu = F.normalize(embedder(b["crops"], b["whisper_states"], b["frame_mask"]).mu, dim=-1)
            guess = (mu @ table.t()).argmax(1)
            truth = [names.index(PRIOR_EMOTIONS[e]) if PRIOR_EMOTIONS[e] in names else -1 for e in b["emotion"].tolist()]
            right += sum(int(g == t) for g, t in zip(guess.tolist(), truth))
            total += len(truth)
    return (right / total if total else float("nan")), total


def export(run: EmbedderRun) -> dict:
    """Write ``priors/``, ``embedder.safetensors`` and ``embedder.json``; returns the JSON record."""
    from safetensors.torch import save_file

    out = Path(run.cfg.out_dir)
    names = {i: n for i, n in enumerate(PRIOR_EMOTIONS)}
    priors = emotion_priors(run.embedder, clip_batches(run.store, run.clips, run.cfg.frames_per_clip), names)
    save_priors(out / "priors", priors)
    record: dict = {"config": to_dict(run.cfg), "step": run.step, "whisper": run.whisper,
                    "emotions": sorted(priors), "n_train_clips": len(run.clips),
                    "train_speakers": sorted({c.speaker for c in run.clips})}
    if run.cfg.eval_split:
        try:
            held_out = labelled_clips(Path(run.cfg.data_root), run.cfg.eval_split)
        except DatasetError as exc:
            logger.info("no held-out evaluation: %s", exc)
        else:
            acc, n = nearest_prior_accuracy(run.embedder, priors, clip_batches(
                ClipStore(run.cfg.resolution, run.cfg.cache_clips), held_out, run.cfg.frames_per_clip))
            record["eval"] = {"split": run.cfg.eval_split, "nearest_prior_accuracy": acc, "n_clips": n,
                              "chance": 1.0 / len(priors)}
            logger.info("held-out nearest-prior accuracy %.3f over %d clips (chance %.3f)", acc, n, 1 / len(priors))
    tmp = out / "embedder.safetensors.tmp"
    save_file({k: v.detach().contiguous() for k, v in run.embedder.state_dict().items()}, str(tmp))
    tmp.replace(out / "embedder.safetensors")
    atomic_write_bytes(out / "embedder.json", json.dumps(record, indent=2, sort_keys=True).encode())
    return record


def train_embedder(cfg: EmbedderTrainConfig, *, resume_run: bool = False,
                   on_step: Callable[[EmbedderRun, dict], None] | None = None) -> EmbedderRun:
    """Train to ``cfg.steps`` (checkpoints every ``checkpoint_every`` steps and at the end), then export."""
    run = setup(cfg)
    if resume_run:
        resume(run)
    save_config(cfg, cfg.out_dir, name="embedder_config.yaml")
    from tqdm import tqdm

    with tqdm(total=cfg.steps, initial=run.step, desc="embedder", disable=None) as bar:
        while run.step < cfg.steps:
            terms = train_step(run)
            if run.step % max(1, cfg.checkpoint_every) == 0 or run.step == cfg.steps:
                ckpt.save_checkpoint(cfg.out_dir, run.step, run.embedder, run.optimizer, _state(run))
            if on_step is not None:
                on_step(run, terms)
            bar.update(1)
            bar.set_postfix(supcon=f"{terms['supcon']:.3f}")
    export(run)
    return run


def load_embedder(folder: str | Path) -> tuple[EmotionEmbedder, dict]:
    """The exported embedder of a training output folder (``embedder.safetensors`` + ``embedder.json``)."""
    from safetensors.torch import load_file

    from dicetalk_bench.config import from_dict

    folder = Path(folder)
    weights, meta = folder / "embedder.safetensors", folder / "embedder.json"
    for p in (weights, meta):
        if not p.is_file():
            raise FileNotFoundError(f"{p} not found: train the embedder with `python -m dicetalk_bench.train_embedder`")
    record = json.loads(meta.read_text())
    cfg = from_dict(EmbedderTrainConfig, record["config"])
    embedder = EmotionEmbedder(cfg.embedder)
    embedder.load_state_dict(load_file(str(weights)), strict=True)
    return embedder.eval(), record
