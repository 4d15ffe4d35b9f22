"""Sample one talking-head video from a portrait, an audio file and an emotion: the library behind
``python -m dicetalk_bench.sample``.

:class:`PortraitSampleRequest` holds what the command line takes; :func:`check_request` runs every cheap check before
torch or the model loads (the checkpoint's kind and files, the emotion, the image and audio, the face box or the
detector's weights, ``--whisper``) and raises :class:`~dicetalk_bench.errors.SetupError` naming the fix;
:func:`sample_portrait` loads the model once and writes the video. The emotion is a name stored in the checkpoint,
a prior ``.npy`` (read with the safe prior loader) or a reference video embedded by the emotion embedder whose
priors trained the checkpoint (V-mode). Sampling follows the DICE-Talk release (docs/model.md, "Reproducing the
release").
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


@dataclasses.dataclass(frozen=True)
class PortraitSampleRequest:
    """One sampling job, as ``python -m dicetalk_bench.sample`` takes it (each field is the option of that name)."""

    checkpoint: str  # checkpoint folder, run folder, or official release folder
    image: str  # reference portrait (png/jpg)
    audio: str  # speech, resampled to 16 kHz mono
    out: str  # output .mp4
    emotion: str = "neutral"  # name stored in the checkpoint, a prior .npy, or a reference video (needs embedder)
    embedder: str | None = None  # output folder of train_embedder (V-mode)
    face_box: str | None = None  # "x1,y1,x2,y2" in image pixels; None: detect with box_source
    box_source: str = "blazeface"
    whisper: str | None = None  # whisper-tiny folder or random:SEED; None: the checkpoint's (a release: registry)
    svd: str | None = None  # SVD-xt folder for a release folder
    priors: str | None = None  # priors folder for a release folder without emo/
    steps: int = 25
    image_scale: float = 3.0
    condition_scale: float = 6.0
    seed: int = 72589  # the release's default noise seed
    device: str | None = None  # None: cuda when available
    allow_unverified: bool = False
    frame_rate: str | None = None  # release | native; None: from the checkpoint's frame_stride
    rife: str | None = None  # RIFE HDv3 flownet.pkl or its folder (release frame rate)
    crop: str = "none"  # release | none
    keep_resolution: bool = False
    dtype: str = "fp32"  # fp32 | bf16 | fp16
    window_batch: int | None = None  # 25-frame windows per network call; None: the device's default


@dataclasses.dataclass(frozen=True)
class SampledVideo:
    """What :func:`sample_portrait` wrote."""

    path: Path
    n_frames: int  # at 25 fps
    frame_rate_mode: str  # release (12.5 fps + RIFE) or native
    audio_seconds: float


def _face_box(request: PortraitSampleRequest, image: Any) -> Any:
    """Face box x1, y1, x2, y2 in image pixels: ``--face-box`` or BlazeFace; ValueError naming the image when
    none is found."""
    import numpy as np

    if request.face_box:
        return parse_face_box(request.face_box)
    from dicetalk_bench.preprocessing.faces import NoFaceError, track

    try:
        from dicetalk_bench.preprocessing.faces import FaceTrackConfig

        return track(np.repeat(image[None], 2, 0), fps=25.0,
                     config=FaceTrackConfig(box_source=request.box_source)).boxes_xyxy[0]
    except NoFaceError:
        from dicetalk_bench.errors import SetupError

        raise SetupError(f"{request.image}: no face found; expected a portrait with one visible face (or give its box "
                         "with --face-box x1,y1,x2,y2)") from None


def _portrait(request: PortraitSampleRequest, image: Any, box: Any) -> tuple[Any, Any]:
    """The release's optional crop: (image, box) cropped by ``release_crop_box`` when ``--crop release``."""
    import numpy as np

    from dicetalk_bench.model.release_image import release_crop_box

    if request.crop != "release":
        return image, box
    h, w = image.shape[:2]
    x1, y1, x2, y2 = release_crop_box(box, w, h)
    x1, y1, x2, y2 = max(x1, 0), max(y1, 0), min(x2, w), min(y2, h)
    return image[y1:y2, x1:x2], box - np.array([x1, y1, x1, y1], np.float32)


def _reference_prior(request: PortraitSampleRequest, model: Any) -> Any:
    """V-mode: mu of the reference video under the embedder whose priors the checkpoint was trained with."""
    import json
    from pathlib import Path

    import numpy as np

    from dicetalk_bench.model.pipeline import check_whisper
    from dicetalk_bench.model.priors import load_priors
    from dicetalk_bench.model.reference_emotion import reference_emotion

    if not request.embedder:
        raise ValueError(f"--emotion {request.emotion}: a reference video needs --embedder (the output folder of "
                         "`python -m dicetalk_bench.train_embedder`)")
    embedder = Path(request.embedder)
    if (embedder / "priors").is_dir():
        own = load_priors(embedder / "priors", tuple(sorted(model.priors)))
        if any(not np.array_equal(own[k].reshape(-1), np.asarray(model.priors[k]).reshape(-1)) for k in own):
            raise ValueError(f"checkpoint {request.checkpoint} was trained with other emotion priors than those of "
                             f"{embedder}; V-mode needs the embedder whose priors trained the generator")
    check_whisper(model.records["whisper"], json.loads((embedder / "embedder.json").read_text())["whisper"])
    return reference_emotion(request.emotion, embedder, whisper=request.whisper, allow_unverified=request.allow_unverified)


def _stored_emotions(folder: Path) -> list[str]:
    """Emotion names whose priors a generator checkpoint stores (safetensors keys ``priors.<name>``; no tensor
    is read)."""
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="numpy") as f:
        return sorted(k[len("priors."):] for k in f.keys() if k.startswith("priors."))


def check_request(request: PortraitSampleRequest) -> Path:
    """Every cheap check, before torch or the model loads: the checkpoint's kind and files, the emotion (a MEAD
    name stored in the checkpoint, a prior file, or a reference video with ``--embedder``), the image, the audio,
    ``--face-box`` or the face detector's weights, ``--whisper`` and the sampling settings. Returns the checkpoint
    folder; raises SetupError (or WeightsError) naming the fix."""
    from dicetalk_bench.errors import SetupError
    from dicetalk_bench.model.checkpoint_kind import check_generator_files, generator_checkpoint, is_release_folder
    from dicetalk_bench.model.priors import PRIOR_EMOTIONS
    from dicetalk_bench.weights.random_weights import random_spec_seed

    emotion = request.emotion
    suffix = Path(emotion).suffix.lower()
    if suffix == ".npy" or suffix in VIDEO_SUFFIXES:
        if not Path(emotion).is_file():
            raise SetupError(f"--emotion {emotion}: no such file")
        if suffix in VIDEO_SUFFIXES:
            if not request.embedder:
                raise SetupError(f"--emotion {emotion}: a reference video needs --embedder (the output folder of "
                                 "`python -m dicetalk_bench.train_embedder`)")
            if not (Path(request.embedder) / "embedder.json").is_file():
                raise SetupError(f"--embedder {request.embedder}: no embedder.json; pass the output folder of "
                                 "`python -m dicetalk_bench.train_embedder`")
    elif emotion not in PRIOR_EMOTIONS:
        raise SetupError(f"--emotion {emotion!r}: not one of the 8 MEAD emotions ({', '.join(PRIOR_EMOTIONS)}), "
                         "a prior .npy file or a reference video")
    for flag, value in (("--image", request.image), ("--audio", request.audio)):
        if not Path(value).is_file():
            raise SetupError(f"{flag} {value}: no such file")
    if request.steps < 1:
        raise SetupError(f"--steps {request.steps}: must be at least 1")
    try:
        whisper_seed = random_spec_seed(request.whisper, option="--whisper")
    except ValueError as exc:
        raise SetupError(str(exc)) from None
    if request.whisper and whisper_seed is None and not Path(request.whisper).exists():
        raise SetupError(f"--whisper {request.whisper}: no such folder (give a whisper-tiny folder or random:SEED)")
    folder = generator_checkpoint(request.checkpoint, command="sample")
    check_generator_files(folder)
    release = is_release_folder(folder)  # its priors come from emo/ or the registry (checked when it loads)
    if suffix != ".npy" and suffix not in VIDEO_SUFFIXES and not release:
        stored = _stored_emotions(folder)
        if emotion not in stored:
            raise SetupError(f"--emotion {emotion!r}: checkpoint {folder} stores priors for "
                             f"{', '.join(stored) or 'no emotion'}")
    if request.face_box:
        parse_face_box(request.face_box)
    else:
        from PIL import Image

        from dicetalk_bench import weights
        from dicetalk_bench.preprocessing.faces import FaceTrackConfig, box_source, detector_weights_key

        try:
            source = box_source(request.box_source)
        except ValueError as exc:
            raise SetupError(f"--box-source: {exc}") from None
        with Image.open(request.image) as img:
            size = img.size  # (W, H), read from the header
        config = FaceTrackConfig(box_source=request.box_source)
        keys = [detector_weights_key(config, size)] if source.name == "blazeface" else list(source.weights_keys(config))
        for key in keys:
            weights.require(key, hint="\nOr pass --face-box x1,y1,x2,y2 to skip face detection.")
    return folder


def parse_face_box(text: str) -> Any:
    """``x1,y1,x2,y2`` -> (4,) float32 box in image pixels; SetupError otherwise."""
    import numpy as np

    try:
        box = np.array([float(v) for v in text.split(",")], np.float32)
    except ValueError:
        box = np.zeros(0)
    if box.shape != (4,):
        from dicetalk_bench.errors import SetupError

        raise SetupError(f"--face-box {text!r}: expected four numbers x1,y1,x2,y2")
    return box


def sample_portrait(request: PortraitSampleRequest, folder: Path) -> SampledVideo:
    """Generate the video of ``request`` from the checked checkpoint ``folder`` (:func:`check_request`) and write it
    to ``request.out`` (H.264 + AAC, 25 fps, with the audio it was driven by)."""
    import json

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

    device = request.device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype(request.dtype, device)
    state_file = folder / "state.json"  # a release folder has none: it was trained at frame_stride 2
    train_config = json.loads(state_file.read_text())["config"] if state_file.is_file() else {"frame_stride": 2}
    mode = frame_rate_for(train_config, request.frame_rate)
    # cheap checks on the inputs before any model is loaded
    image = np.array(Image.open(request.image).convert("RGB"))
    image, box = _portrait(request, image, _face_box(request, image))
    samples = media.read_audio(request.audio, 16000)
    n_frames = n_video_frames(len(samples))
    try:
        generated_frame_count(n_frames, mode)
    except ValueError as exc:
        raise ValueError(f"{request.audio}: {exc}") from None
    sources = ReleaseSources(svd=request.svd, whisper=request.whisper, priors=request.priors,
                             allow_unverified=request.allow_unverified)
    model = load_model(folder, device, sources, request.dtype)
    if mode == "release":
        attach_rife(model, request.rife, allow_unverified=request.allow_unverified)
    if request.emotion.endswith(".npy"):
        prior = load_prior(request.emotion)
    elif Path(request.emotion).suffix.lower() in VIDEO_SUFFIXES:
        prior = _reference_prior(request, model)
    elif request.emotion in model.priors:
        prior = model.priors[request.emotion]
    else:
        raise ValueError(f"--emotion {request.emotion!r}: not a .npy file and not one of the checkpoint's priors "
                         f"{sorted(model.priors)}")
    h, w = image.shape[:2]
    size = model.resolution
    new_w, new_h = release_image_size(w, h, short_side=size, multiple=min(64, size))
    ref = torch.from_numpy(resize_lanczos(image, new_w, new_h).copy()).permute(2, 0, 1).float() / 127.5 - 1
    mask = soft_face_mask(release_mask_box(box, w, h), w, h, new_w, new_h)
    handle = load_whisper(request.whisper or model.records["whisper"]["file"], allow_unverified=request.allow_unverified)
    check_whisper(model.records["whisper"], handle.record)
    states = whisper_states(samples, handle.encoder, n_frames)
    cfg = SampleConfig(steps=request.steps, image_scale=request.image_scale, condition_scale=request.condition_scale,
                       frame_rate=mode, dtype=request.dtype, window_batch=request.window_batch)
    frames = generate_frames(model, ref, states, prior, mask, cfg, seed=request.seed)
    video = ((frames.permute(0, 2, 3, 1).cpu().numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
    if request.keep_resolution:  # the release rescales the output to the portrait's size (even sides)
        video = np.stack([resize_lanczos(f, max(2, w // 2 * 2), max(2, h // 2 * 2)) for f in video])
    audio = samples[: n_frames * SAMPLES_PER_FRAME]
    media.write_video(request.out, video, 25.0, audio=audio, audio_rate=16000)
    return SampledVideo(path=Path(request.out), n_frames=len(video), frame_rate_mode=mode,
                        audio_seconds=len(audio) / 16000)
