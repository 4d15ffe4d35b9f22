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
import dataclasses
import logging
import sys
from typing import Sequence

from dicetalk_bench.cli_args import positive_int
from dicetalk_bench.model.portrait_sample import PortraitSampleRequest

_DEFAULTS = PortraitSampleRequest(checkpoint="", image="", audio="", out="")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m dicetalk_bench.sample", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True,
                   help="checkpoint folder (<run>/checkpoints/step_N), run folder, or official release folder")
    p.add_argument("--image", required=True, help="reference portrait (png/jpg)")
    p.add_argument("--audio", required=True, help="speech (wav/m4a/mp3), resampled to 16 kHz mono")
    p.add_argument("--emotion", default=_DEFAULTS.emotion,
                   help="emotion name stored in the checkpoint, a prior .npy, or a reference video (needs --embedder)")
    p.add_argument("--embedder", help="output folder of `python -m dicetalk_bench.train_embedder` (V-mode)")
    p.add_argument("--out", required=True, help="output .mp4 (H.264 + AAC, 25 fps)")
    p.add_argument("--face-box", help="x1,y1,x2,y2 face box in image pixels (default: detect with --box-source)")
    p.add_argument("--box-source", default=_DEFAULTS.box_source,
                   help="face-box provider (preprocessing.faces.BOX_SOURCES; the release uses YOLOv5m-face, which "
                        "can be registered there)")
    p.add_argument("--whisper", help="whisper-tiny folder or random:SEED (default: the one in the checkpoint; for a "
                                     "release folder the weights registry's whisper-tiny)")
    p.add_argument("--svd", help="SVD-xt diffusers folder for a release folder (default: weights registry svd-xt)")
    p.add_argument("--priors", help="emotion priors folder for a release folder without emo/ (default: weights "
                                    "registry dicetalk-priors)")
    p.add_argument("--steps", type=int, default=_DEFAULTS.steps)
    p.add_argument("--image-scale", type=float, default=_DEFAULTS.image_scale)
    p.add_argument("--condition-scale", type=float, default=_DEFAULTS.condition_scale)
    p.add_argument("--seed", type=int, default=_DEFAULTS.seed, help="noise seed (release default 72589)")
    p.add_argument("--device", default=None)
    p.add_argument("--allow-unverified", action="store_true")
    p.add_argument("--frame-rate", choices=("release", "native"), default=None,
                   help="release: 12.5 fps + RIFE x2 to 25 fps; native: every 25-fps frame generated (default: "
                        "release for checkpoints trained with frame_stride 2, native for frame_stride 1)")
    p.add_argument("--rife", help="RIFE HDv3 flownet.pkl or its folder (default: weights registry key rife-hdv3)")
    p.add_argument("--crop", choices=("release", "none"), default=_DEFAULTS.crop,
                   help="release: crop a square around the face by the release's rule (its demo --crop); "
                        "none: use the whole portrait (default, as the release's demo)")
    p.add_argument("--keep-resolution", action="store_true",
                   help="write the video at the (cropped) portrait's size instead of the model's")
    p.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default=_DEFAULTS.dtype,
                   help="network precision (the release runs fp16, which needs a CUDA device)")
    p.add_argument("--window-batch", type=positive_int, default=None, metavar="N",
                   help="N 25-frame windows per network call (speed and memory only; frames agree to float "
                        "rounding); default: as many as fit in free CUDA memory, 4 on the CPU")
    p.add_argument("-v", "--verbose", action="store_true", help="show the traceback of a set-up error")
    return p


def request_from_args(args: argparse.Namespace) -> PortraitSampleRequest:
    """The parsed options as a :class:`PortraitSampleRequest` (every field has an option of the same name)."""
    return PortraitSampleRequest(**{f.name: getattr(args, f.name) for f in dataclasses.fields(PortraitSampleRequest)})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from dicetalk_bench.cli_errors import run_cli

    return run_cli(lambda: _sample(request_from_args(args)), verbose=args.verbose)


def _sample(request: PortraitSampleRequest) -> int:
    from dicetalk_bench.model.portrait_sample import check_request, sample_portrait

    done = sample_portrait(request, check_request(request))
    print(f"wrote {done.path}: {done.n_frames} frames at 25 fps ({done.frame_rate_mode} frame rate), "
          f"{done.audio_seconds:.2f} s of audio")
    return 0


if __name__ == "__main__":
    sys.exit(main())
