"""Sample a talking-head video from a trained DICE-Talk checkpoint or an official release folder.

``python -m dicetalk_bench.sample --checkpoint CKPT --image IMG --audio WAV --emotion {name | prior.npy |
reference.mp4} --out OUT.mp4``: ``name`` resolves to the priors stored in the checkpoint; a ``.npy`` is read with
the safe prior loader; a video is embedded by the emotion embedder given with ``--embedder`` (V-mode), which
must be the one whose priors trained the checkpoint. The audio is encoded with the Whisper weights the checkpoint was
trained with (refused otherwise); the video has one frame per 40 ms of audio (25 fps) and carries the audio.
Every argument is checked before the model loads (:func:`check_inputs`: the checkpoint's kind, the emotion name
among the 8 MEAD emotions and the checkpoint's priors, the files, the face detector's weights); a set-up error
prints ``error: ...`` and exits 1.

``--checkpoint`` also accepts an official release folder (``unet.pth``, ``pose_guider.pth``, ``audio_linear.pth``,
``emo_model.pth``, priors in ``emo/``): the SVD-xt folder, whisper-tiny and the priors it does not hold come from
``--svd``, ``--whisper``, ``--priors`` or the weights registry (docs/model.md, "Reproducing the release").

Sampling follows the DICE-Talk release (docs/model.md, "Reproducing the release"): ``--frame-rate release``
(the default for checkpoints trained with ``frame_stride`` 2, and for release folders) generates 12.5 fps and
doubles it with RIFE; ``--crop release`` crops the portrait around the face as the release's demo does; non-square
portraits keep their aspect (shorter side = the model's resolution); ``--keep-resolution`` scales the video back to
the portrait's size.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from dicetalk_bench.cli_args import positive_int


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
    p.add_argument("--face-box", help="x1,y1,x2,y2 face box in image pixels (default: detect with --box-source)")
    p.add_argument("--box-source", default="blazeface",
                   help="face-box provider (preprocessing.faces.BOX_SOURCES; the release uses YOLOv5m-face, which "
                        "can be registered there)")
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
    p.add_argument("--frame-rate", choices=("release", "native"), default=None,
                   help="release: 12.5 fps + RIFE x2 to 25 fps; native: every 25-fps frame generated (default: "
                        "release for checkpoints trained with frame_stride 2, native for frame_stride 1)")
    p.add_argument("--rife", help="RIFE HDv3 flownet.pkl or its folder (default: weights registry key rife-hdv3)")
    p.add_argument("--crop", choices=("release", "none"), default="none",
                   help="release: crop a square around the face by the release's rule (its demo --crop); "
                        "none: use the whole portrait (default, as the release's demo)")
    p.add_argument("--keep-resolution", action="store_true",
                   help="write the video at the (cropped) portrait's size instead of the model's")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="network precision (the release runs fp16, which needs a CUDA device)")
    p.add_argument("--window-batch", type=positive_int, default=None, metavar="N",
                   help="N 25-frame windows per network call (speed and memory only; frames agree to float "
                        "rounding); default: as many as fit in free CUDA memory, 4 on the CPU")
    p.add_argument("-v", "--verbose", action="store_true", help="show the traceback of a set-up error")
    return p


def _face_box(args, image):
    """Face box x1, y1, x2, y2 in image pixels: ``--face-box`` or BlazeFace; ValueError naming the image when
    none is found."""
    import numpy as np

    if args.face_box:
        return _parse_box(args.face_box)
    from dicetalk_bench.preprocessing.faces import NoFaceError, track

    try:
        from dicetalk_bench.preprocessing.faces import FaceTrackConfig

        return track(np.repeat(image[None], 2, 0), fps=25.0,
                     config=FaceTrackConfig(box_source=args.box_source)).boxes_xyxy[0]
    except NoFaceError:
        from dicetalk_bench.errors import SetupError

        raise SetupError(f"{args.image}: no face found; expected a portrait with one visible face (or give its box "
                         "with --face-box x1,y1,x2,y2)") from None


def _portrait(args, image, box):
    """The release's optional crop: (image, box) cropped by ``release_crop_box`` when ``--crop release``."""
    import numpy as np

    from dicetalk_bench.model.release_image import release_crop_box

    if args.crop != "release":
        return image, box
    h, w = image.shape[:2]
    x1, y1, x2, y2 = release_crop_box(box, w, h)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    return image[y1:y2, x1:x2], box - np.array([x1, y1, x1, y1], np.float32)


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


def _stored_emotions(folder) -> list[str]:
    """Emotion names whose priors a generator checkpoint stores (safetensors keys ``priors.<name>``; no tensor
    is read)."""
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="numpy") as f:
        return sorted(k[len("priors."):] for k in f.keys() if k.startswith("priors."))


def check_inputs(args: argparse.Namespace):
    """Every cheap check, before torch or the model loads: the checkpoint's kind and files, the emotion (a MEAD
    name stored in the checkpoint, a prior file, or a reference video with ``--embedder``), the image, the audio,
    ``--face-box`` or the face detector's weights, ``--whisper`` and the sampling settings. Returns the checkpoint
    folder; raises SetupError (or WeightsError) naming the fix."""
    from pathlib import Path

    from dicetalk_bench.errors import SetupError
    from dicetalk_bench.model.checkpoint_kind import check_generator_files, generator_checkpoint, is_release_folder
    from dicetalk_bench.model.priors import PRIOR_EMOTIONS
    from dicetalk_bench.weights.random_weights import random_spec_seed

    emotion = args.emotion
    suffix = Path(emotion).suffix.lower()
    if suffix == ".npy" or suffix in VIDEO_SUFFIXES:
        if not Path(emotion).is_file():
            raise SetupError(f"--emotion {emotion}: no such file")
        if suffix in VIDEO_SUFFIXES:
            if not args.embedder:
                raise SetupError(f"--emotion {emotion}: a reference video needs --embedder (the output folder of "
                                 "`python -m dicetalk_bench.train_embedder`)")
            if not (Path(args.embedder) / "embedder.json").is_file():
                raise SetupError(f"--embedder {args.embedder}: no embedder.json; pass the output folder of "
                                 "`python -m dicetalk_bench.train_embedder`")
    elif emotion not in PRIOR_EMOTIONS:
        raise SetupError(f"--emotion {emotion!r}: not one of the 8 MEAD emotions ({', '.join(PRIOR_EMOTIONS)}), "
                         "a prior .npy file or a reference video")
    for flag, value in (("--image", args.image), ("--audio", args.audio)):
        if not Path(value).is_file():
            raise SetupError(f"{flag} {value}: no such file")
    if args.steps < 1:
        raise SetupError(f"--steps {args.steps}: must be at least 1")
    try:
        whisper_seed = random_spec_seed(args.whisper, option="--whisper")
    except ValueError as exc:
        raise SetupError(str(exc)) from None
    if args.whisper and whisper_seed is None and not Path(args.whisper).exists():
        raise SetupError(f"--whisper {args.whisper}: no such folder (give a whisper-tiny folder or random:SEED)")
    folder = generator_checkpoint(args.checkpoint, command="sample")
    check_generator_files(folder)
    release = is_release_folder(folder)  # its priors come from emo/ or the registry (checked when it loads)
    if suffix != ".npy" and suffix not in VIDEO_SUFFIXES and not release:
        stored = _stored_emotions(folder)
        if emotion not in stored:
            raise SetupError(f"--emotion {emotion!r}: checkpoint {folder} stores priors for "
                             f"{', '.join(stored) or 'no emotion'}")
    if args.face_box:
        _parse_box(args.face_box)
    else:
        from PIL import Image

        from dicetalk_bench import weights
        from dicetalk_bench.preprocessing.faces import FaceTrackConfig, box_source, detector_weights_key

        try:
            source = box_source(args.box_source)
        except ValueError as exc:
            raise SetupError(f"--box-source: {exc}") from None
        with Image.open(args.image) as img:
            size = img.size  # (W, H), read from the header
        config = FaceTrackConfig(box_source=args.box_source)
        keys = [detector_weights_key(config, size)] if source.name == "blazeface" else list(source.weights_keys(config))
        for key in keys:
            weights.require(key, hint="\nOr pass --face-box x1,y1,x2,y2 to skip face detection.")
    return folder


def _parse_box(text: str):
    import numpy as np

    try:
        box = np.array([float(v) for v in text.split(",")], np.float32)
    except ValueError:
        box = np.zeros(0)
    if box.shape != (4,):
        from dicetalk_bench.errors import SetupError

        raise SetupError(f"--face-box {text!r}: expected four numbers x1,y1,x2,y2")
    return box


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from dicetalk_bench.cli_errors import run_cli

    return run_cli(lambda: _sample(args, check_inputs(args)), verbose=args.verbose)


def _sample(args: argparse.Namespace, folder) -> int:
    import json
    from pathlib import Path

    import numpy as np
    import torch
    from PIL import Image

    from dicetalk_bench import media
    from dicetalk_bench.model.pipeline import (SampleConfig, attach_rife, check_whisper, frame_rate_for,
                                               generate_frames, generated_frame_count, load_model, torch_dtype)
    from dicetalk_bench.model.priors import load_prior
    from dicetalk_bench.model.release import ReleaseSources
    from dicetalk_bench.model.release_image import release_image_size, release_mask_box, resize_lanczos, soft_face_mask
    from dicetalk_bench.preprocessing.audio_features import SAMPLES_PER_FRAME, n_video_frames, whisper_states
    from dicetalk_bench.preprocessing.whisper import load_whisper

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype(args.dtype, device)
    state_file = folder / "state.json"  # a release folder has none: it was trained at frame_stride 2
    train_config = json.loads(state_file.read_text())["config"] if state_file.is_file() else {"frame_stride": 2}
    mode = frame_rate_for(train_config, args.frame_rate)
    # cheap checks on the inputs before any model is loaded
    image = np.array(Image.open(args.image).convert("RGB"))
    image, box = _portrait(args, image, _face_box(args, image))
    samples = media.read_audio(args.audio, 16000)
    n_frames = n_video_frames(len(samples))
    try:
        generated_frame_count(n_frames, mode)
    except ValueError as exc:
        raise ValueError(f"{args.audio}: {exc}") from None
    sources = ReleaseSources(svd=args.svd, whisper=args.whisper, priors=args.priors,
                             allow_unverified=args.allow_unverified)
    model = load_model(folder, device, sources, args.dtype)
    if mode == "release":
        attach_rife(model, args.rife, allow_unverified=args.allow_unverified)
    if args.emotion.endswith(".npy"):
        prior = load_prior(args.emotion)
    elif Path(args.emotion).suffix.lower() in VIDEO_SUFFIXES:
        prior = _reference_prior(args, model)
    elif args.emotion in model.priors:
        prior = model.priors[args.emotion]
    else:
        raise ValueError(f"--emotion {args.emotion!r}: not a .npy file and not one of the checkpoint's priors "
                         f"{sorted(model.priors)}")
    h, w = image.shape[:2]
    size = model.resolution
    new_w, new_h = release_image_size(w, h, short_side=size, multiple=min(64, size))
    ref = torch.from_numpy(resize_lanczos(image, new_w, new_h)).permute(2, 0, 1).float() / 127.5 - 1
    mask = soft_face_mask(release_mask_box(box, w, h), w, h, new_w, new_h)
    handle = load_whisper(args.whisper or model.records["whisper"]["file"], allow_unverified=args.allow_unverified)
    check_whisper(model.records["whisper"], handle.record)
    states = whisper_states(samples, handle.encoder, n_frames)
    cfg = SampleConfig(steps=args.steps, image_scale=args.image_scale, condition_scale=args.condition_scale,
                       frame_rate=mode, dtype=args.dtype, window_batch=args.window_batch)
    frames = generate_frames(model, ref, states, prior, mask, cfg, seed=args.seed)
    video = ((frames.permute(0, 2, 3, 1).cpu().numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    if args.keep_resolution:  # the release rescales the output to the portrait's size (even sides)
        video = np.stack([resize_lanczos(f, max(2, w // 2 * 2), max(2, h // 2 * 2)) for f in video])
    audio = samples[: n_frames * SAMPLES_PER_FRAME]
    media.write_video(args.out, video, 25.0, audio=audio, audio_rate=16000)
    print(f"wrote {args.out}: {len(video)} frames at 25 fps ({mode} frame rate), {len(audio) / 16000:.2f} s of audio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
