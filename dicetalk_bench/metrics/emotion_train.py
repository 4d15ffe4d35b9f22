"""Our own MEAD emotion classifier for Emo-Acc: the protocol, and the ``train-emotion`` command line.

    python -m dicetalk_bench.metrics train-emotion --processed PREPROCESSED_DIR --out own_emotion.safetensors \
        [--epochs 200] [--seed 0] [--frames-per-video 8] [--views front]

The model is deliberately small: **multinomial logistic regression on fixed pixel features** of two face regions
(brows and mouth, where the action units that separate the MEAD emotions act), with **per-speaker feature
normalisation**. Why linear on fixed features and not a CNN: MEAD-train has few identities (the built-in demo has 4),
and a CNN fed whole faces learns identity before expression (a plain model was at chance on held-out speakers);
a linear model on speaker-centred region pixels trains in well under a second on the CPU, is deterministic for a
seed, and its whole protocol fits in one JSON file.

Protocol (every item is recorded in the checkpoint's JSON and in each Emo-Acc result):

1. **Input** -- square face crops made by :func:`dicetalk_bench.preprocessing.crop.square_face_crops`: side
   ``crop_scale`` x the larger side of the face box, centred on the box, resized to ``input_size`` (INTER_AREA).
   Training takes the box from the preprocessed ``faces/{clip_id}.parquet`` (``box_crop``); scoring takes it from the
   BlazeFace track of the scored video (Emo-Acc's own face tracking).
2. **Frames** -- ``frames_per_video`` frames per video at indices ``round(linspace(0, T - 1, K + 2)[1:-1])`` (evenly
   spaced, the first and last frame left out); the same rule at training and at scoring.
3. **Features** -- each region (a rectangle in face-box coordinates, :data:`REGIONS`) is cut from the crop, resized to
   ``region_size`` (W, H) with INTER_AREA, RGB / 255, flattened; the regions are concatenated: (T, F) float32.
4. **Per-speaker normalisation** -- subtract the speaker's mean feature, the mean over the sampled frames of all of
   that speaker's videos in the set. It needs no labels, only the speaker's unlabelled videos, so it is legitimate at
   test time; it assumes each speaker's set covers the emotions roughly as MEAD does (every test speaker in all
   8 emotions), which is the MEAD test protocol. Then ``(x - feature_mean) / feature_std`` with training statistics.
5. **Classifier** -- logits = x W^T + b over the 8 MEAD emotions (:data:`emotion.MEAD_EMOTIONS` order), trained with
   Adam (numpy), cross-entropy, L2 penalty, seeded initialisation and seeded mini-batch order.
6. **Video prediction** -- argmax of the mean frame logit (``mean-logit``); accuracy, per-class accuracy and the
   confusion matrix on the test split (speakers disjoint from training) are stored in the JSON.

Checkpoint: ``CKPT.safetensors`` (``weight`` (8, F), ``bias`` (8,), ``feature_mean`` (F,), ``feature_std`` (F,))
and ``CKPT.json`` (labels, input, regions, normalisation, frame sampling, training settings, the training manifest's
hash, the safetensors sha256, test metrics).

Modules: :mod:`.emotion_own_features` (frame sampling, region features, speaker means: steps 1-4),
:mod:`.emotion_own_classifier` (the EmotionClassifier adapter and per-speaker scoring: steps 5-6 at scoring time),
:mod:`.emotion_own_dataset` (preprocessed clips -> features), :mod:`.emotion_own_training` (the fit and the test
metrics), :mod:`.emotion_own_checkpoint` (the files). This module re-exports their public names.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .emotion_own_checkpoint import FORMAT_VERSION, load_own_classifier, save_checkpoint
from .emotion_own_classifier import OwnEmotionClassifier, score_speaker_normalised
from .emotion_own_features import (REGIONS, OwnEmotionProtocol, region_features, sample_frame_indices,
                                   speaker_from_clip_id, speaker_means)
from .emotion_own_training import TrainEmotionConfig, train_emotion

__all__ = ["REGIONS", "FORMAT_VERSION", "OwnEmotionProtocol", "OwnEmotionClassifier", "TrainEmotionConfig",
           "sample_frame_indices", "region_features", "speaker_means", "train_emotion", "load_own_classifier",
           "save_checkpoint", "speaker_from_clip_id", "score_speaker_normalised", "build_parser", "main"]


# ---------------------------------------------------------------------------------------------------------------
# CLI (wired as `python -m dicetalk_bench.metrics train-emotion` through EXTRA_COMMANDS)
# ---------------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    d, p = TrainEmotionConfig(), OwnEmotionProtocol()
    parser = argparse.ArgumentParser(
        prog="python -m dicetalk_bench.metrics train-emotion",
        description="Train our own MEAD emotion classifier (Emo-Acc) from preprocessed face crops: train split -> "
                    "CKPT.safetensors + CKPT.json with the protocol and the test-split accuracy.")
    parser.add_argument("--processed", type=Path, required=True, help="output folder of dicetalk_bench.preprocess")
    parser.add_argument("--out", type=Path, required=True, help="checkpoint path (.safetensors; .json beside it)")
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--weight-decay", type=float, default=d.weight_decay)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--frames-per-video", type=int, default=p.frames_per_video)
    parser.add_argument("--crop-scale", type=float, default=p.crop_scale)
    parser.add_argument("--input-size", type=int, default=p.input_size)
    parser.add_argument("--views", nargs="+", default=None, help="MEAD views to use (default: all in the manifest)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    for name in ("epochs", "batch_size", "frames_per_video", "input_size"):
        if getattr(args, name) <= 0:
            raise SystemExit(f"error: --{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.crop_scale < 1.0:
        raise SystemExit(f"error: --crop-scale must be >= 1 (the crop holds the face box), got {args.crop_scale}")
    cfg = TrainEmotionConfig(
        protocol=OwnEmotionProtocol(crop_scale=args.crop_scale, input_size=args.input_size,
                                    frames_per_video=args.frames_per_video),
        epochs=args.epochs, seed=args.seed, lr=args.lr, weight_decay=args.weight_decay, batch_size=args.batch_size,
        views=tuple(args.views) if args.views else None)
    try:
        meta = train_emotion(args.processed, args.out, cfg)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"error: {exc}") from exc
    m = meta["test_metrics"]
    sys.stdout.write(f"test accuracy {m['accuracy']:.1f}% on {m['n_videos']} videos (chance {m['chance']:.1f}%)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
