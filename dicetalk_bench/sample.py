"""Sample a talking-head video from a trained DICE-Talk checkpoint or an official release folder.

``python -m dicetalk_bench.sample --checkpoint CKPT --image IMG --audio WAV --emotion {name | prior.npy |
reference.mp4} --out OUT.mp4``: ``name`` resolves to the priors stored in the checkpoint; a ``.npy`` is read with
the safe prior loader; a video is embedded by the emotion embedder given with ``--embedder`` (V-mode), which
must be the one whose priors trained the checkpoint. The audio is encoded with the Whisper weights the checkpoint was trained with (refused otherwise); the
video has one frame per 40 ms of audio (25 fps) and carries the audio.

``--checkpoint`` also accepts an official release folder (``unet.pth``, ``pose_guider.pth``, ``audio_linear.pth``,
``emo_model.pth``, priors in ``emo/``): the SVD-xt folder, whisper-tiny and the priors it does not hold come from
``--svd``, ``--whisper``, ``--priors`` or the weights registry (docs/model.md, "Reproducing the release").
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dicetalk_bench.sample", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True,
                   help="checkpoint folder (<run>/checkpoints/step_N), run folder, or official release folder")
    p.add_argument("--image", required=True, help="reference portrait (png/jpg)")
    p.add_argument("--audio", required=True, help="speech (wav/m4a/mp3), resampled to 16 kHz mono")
    p.add_argument("--emotion", default="neutral",
                   help="emotion name stored in the checkpoint, a prior .npy, or a reference video (needs --embedder)")
    p.add_argument("--embedder", help="output folder of `python -m dicetalk_bench.train_embedder` (V-mode)")
    p.add_argument("--out", required=True, help="output .mp4 (H.264 + AAC, 25 fps)")
    p.add_argument("--face-box", help="x1,y1,x2,y2 face box in image pixels (default: detect with BlazeFace)")
    p.add_argument("--whisper", help="whisper-tiny folder or random:SEED (default: the one in the checkpoint; for a "
                                     "release folder the weights registry's whisper-tiny)")
    p.add_argument("--svd", help="SVD-xt diffusers folder for a release folder (default: weights registry svd-xt)")
    p.add_argument("--priors", help="emotion priors folder for a release folder without emo/ (default: weights "
                                    "registry dicetalk-priors)")
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--image-scale", type=float, default=3.0)
    p.add_argument("--condition-scale", type=float, default=6.0)
    p.add_argument("--seed", type=int, default=72589, help="noise seed (release default 72589)")
    p.add_argument("--device", default=None)
    p.add_argument("--allow-unverified", action="store_true")
    return p


def _face_box(args, image, size: int):
    import numpy as np

    if args.face_box:
        try:
            box = np.array([float(v) for v in args.face_box.split(",")], np.float32)
        except ValueError:
            box = np.zeros(0)
        if box.shape != (4,):
            raise ValueError(f"--face-box {args.face_box!r}: expected four numbers x1,y1,x2,y2")
    else:
        from dicetalk_bench.preprocessing.faces import track

        box = track(np.repeat(image[None], 2, 0), fps=25.0).boxes_xyxy[0]
    centre = (box[:2] + box[2:]) / 2
    box = np.concatenate([centre - (centre - box[:2]) * 1.1, centre + (box[2:] - centre) * 1.1])  # release area 1.1
    h, w = image.shape[:2]
    return box * np.array([size / w, size / h, size / w, size / h], np.float32)


VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def _reference_prior(args, model):
    """V-mode: mu of the reference video under the embedder whose priors the checkpoint was trained with."""
    import json
    from pathlib import Path

    import numpy as np

    from dicetalk_bench.model.pipeline import check_whisper
    from dicetalk_bench.model.priors import load_priors
    from dicetalk_bench.model.reference_emotion import reference_emotion

    if not args.embedder:
        raise ValueError(f"--emotion {args.emotion}: a reference video needs --embedder (the output folder of "
                         "`python -m dicetalk_bench.train_embedder`)")
    embedder = Path(args.embedder)
    if (embedder / "priors").is_dir():
        own = load_priors(embedder / "priors", tuple(sorted(model.priors)))
        if any(not np.array_equal(own[k].reshape(-1), np.asarray(model.priors[k]).reshape(-1)) for k in own):
            raise ValueError(f"checkpoint {args.checkpoint} was trained with other emotion priors than those of "
                             f"{embedder}; V-mode needs the embedder whose priors trained the generator")
    check_whisper(model.records["whisper"], json.loads((embedder / "embedder.json").read_text())["whisper"])
    return reference_emotion(args.emotion, embedder, whisper=args.whisper, allow_unverified=args.allow_unverified)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from pathlib import Path

    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image

    from dicetalk_bench import media
    from dicetalk_bench.model.pipeline import SampleConfig, check_whisper, generate_frames, load_model
    from dicetalk_bench.model.priors import load_prior
    from dicetalk_bench.model.release import ReleaseSources
    from dicetalk_bench.weights import WeightsError
    from dicetalk_bench.preprocessing.audio_features import SAMPLES_PER_FRAME, n_video_frames, whisper_states
    from dicetalk_bench.preprocessing.whisper import load_whisper

    try:
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        sources = ReleaseSources(svd=args.svd, whisper=args.whisper, priors=args.priors,
                                 allow_unverified=args.allow_unverified)
        model = load_model(args.checkpoint, device, sources)
        if args.emotion.endswith(".npy"):
            prior = load_prior(args.emotion)
        elif Path(args.emotion).suffix.lower() in VIDEO_SUFFIXES:
            prior = _reference_prior(args, model)
        elif args.emotion in model.priors:
            prior = model.priors[args.emotion]
        else:
            raise ValueError(f"--emotion {args.emotion!r}: not a .npy file and not one of the checkpoint's priors "
                             f"{sorted(model.priors)}")
        image = np.array(Image.open(args.image).convert("RGB"))
        size = model.resolution
        ref = torch.from_numpy(image).permute(2, 0, 1).float()[None] / 127.5 - 1
        ref = F.interpolate(ref, size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
        box = _face_box(args, image, size)
        samples = media.read_audio(args.audio, 16000)
        n_frames = n_video_frames(len(samples))
        if n_frames < 1:
            raise ValueError(f"{args.audio}: shorter than one video frame (40 ms)")
        handle = load_whisper(args.whisper or model.records["whisper"]["file"], allow_unverified=args.allow_unverified)
        check_whisper(model.records["whisper"], handle.record)
        states = whisper_states(samples, handle.encoder, n_frames)
        cfg = SampleConfig(steps=args.steps, image_scale=args.image_scale, condition_scale=args.condition_scale)
        frames = generate_frames(model, ref, states, prior, box, cfg, seed=args.seed)
    except (ValueError, FileNotFoundError, media.MediaError, WeightsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    video = ((frames.permute(0, 2, 3, 1).cpu().numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    audio = samples[: n_frames * SAMPLES_PER_FRAME]
    media.write_video(args.out, video, 25.0, audio=audio, audio_rate=16000)
    print(f"wrote {args.out}: {len(video)} frames at 25 fps, {len(audio) / 16000:.2f} s of audio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
