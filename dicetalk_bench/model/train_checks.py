"""Cheap checks of a training configuration, run before any model is built or any output folder is created.

``train`` and ``train_embedder`` call these first, so a missing input (the preprocessing output, the emotion priors,
the SVD folder, the release files for ``init_official``) or a bad value stops the command at once with a message
naming the fix, and leaves no half-made run folder behind. Files are only located here (no hashing, no loading):
the hash checks happen when the files are loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dicetalk_bench.errors import SetupError
from dicetalk_bench.weights.random_weights import random_spec_seed

# the release files init_official loads (model/official.py COMPONENTS; listed here so no torch is imported)
OFFICIAL_KEYS: tuple[str, ...] = ("dicetalk-unet", "dicetalk-pose-guider", "dicetalk-audio-linear",
                                  "dicetalk-emo-model")


def _locate(key: str, path: str | Path | None = None, *, hint: str = "") -> None:
    from dicetalk_bench import weights

    weights.require(key, path, hint=hint)


def _check_manifest(data_root: Path, what: str) -> None:
    if not (Path(data_root) / "clips.parquet").is_file():
        raise SetupError(f"data_root {data_root}: no clips.parquet; {what} reads the output of "
                         "`python -m dicetalk_bench.preprocess` (set data_root in the config or as data_root=DIR)")


def check_train_inputs(cfg: Any) -> None:
    """Check a :class:`~dicetalk_bench.model.train_loop.TrainConfig` without building anything.

    Raises SetupError / WeightsError / ValueError naming the key and the fix: unknown model size, missing
    preprocessing output, emotion priors (``emotion_source: class-mean``: ``priors_dir`` or the registry's
    ``dicetalk-priors``), SVD folder
    (unless ``svd: random:SEED``), release files (``init_official``), or a non-positive step count.
    """
    from dicetalk_bench.model.config import get_model_config
    from dicetalk_bench.model.priors import PRIOR_EMOTIONS

    get_model_config(cfg.model)
    if cfg.steps < 1 or cfg.batch_size < 1:
        raise SetupError(f"steps ({cfg.steps}) and batch_size ({cfg.batch_size}) must be at least 1")
    _check_manifest(cfg.data_root, "train")
    if getattr(cfg, "emotion_source", "class-mean") != "class-mean":
        pass  # per-clip: the embedder's folder holds the priors (checked with embedder_dir by check_config)
    elif cfg.priors_dir is not None:
        folder = Path(cfg.priors_dir)
        if not folder.is_dir():
            raise SetupError(f"priors_dir {folder}: not a folder; point it at a folder of <emotion>.npy priors (the "
                             "priors/ folder `python -m dicetalk_bench.train_embedder` writes, or the release's emo/)")
        missing = [f"{n}.npy" for n in PRIOR_EMOTIONS if not (folder / f"{n}.npy").is_file()]
        if missing:
            raise SetupError(f"priors_dir {folder}: missing {', '.join(missing)} (all {len(PRIOR_EMOTIONS)} MEAD "
                             "emotions are needed)")
    else:
        _locate("dicetalk-priors", hint="\nOr set priors_dir in the config to a folder of <emotion>.npy priors (e.g. "
                                        "the priors/ folder written by `python -m dicetalk_bench.train_embedder`).")
    try:
        svd_seed = random_spec_seed(cfg.svd, option="svd")
    except ValueError as exc:
        raise SetupError(f"{exc}, or an SVD-xt folder") from None
    if svd_seed is None:
        _locate("svd-xt", cfg.svd)
    if cfg.init_official:
        for key in OFFICIAL_KEYS:
            _locate(key, hint="\n(init_official: true loads the four release files; set it to false to start from "
                              "the SVD UNet)")


def check_embedder_inputs(cfg: Any) -> None:
    """Check an :class:`~dicetalk_bench.model.embedder_train.EmbedderTrainConfig` without building anything."""
    if cfg.steps < 1 or cfg.clips_per_batch < 1 or cfg.frames_per_clip < 1:
        raise SetupError(f"steps ({cfg.steps}), clips_per_batch ({cfg.clips_per_batch}) and frames_per_clip "
                         f"({cfg.frames_per_clip}) must be at least 1")
    _check_manifest(cfg.data_root, "train_embedder")
