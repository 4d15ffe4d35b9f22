"""Emotion from a reference video (the paper's V-mode at inference; DICE-Talk#7 asks for it).

A raw talking-face video goes through the same steps as a preprocessed training clip of the embedder: 25 fps
frames, the face track (:func:`preprocessing.faces.track`), the preprocessing crop (``CropConfig``, 512 px by
default) resized to the embedder's resolution with the same antialiased bilinear filter as its training reader,
and the Whisper states of the video's own audio from the Whisper weights the embedder was trained on (refused
otherwise). ``frames_per_clip`` evenly spaced frames are embedded; the result is mu, shape (1, 256), usable as
an emotion prior for sampling.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dicetalk_bench.preprocessing.crop import CropConfig


def reference_emotion(video: str | Path, embedder_dir: str | Path, *, whisper: str | None = None,
                      allow_unverified: bool = False, crop: CropConfig = CropConfig(), detector: Any = None
                      ) -> np.ndarray:
    """mu (1, 256) float32 of ``video`` under the embedder exported in ``embedder_dir``.

    ``whisper``: the Whisper folder or ``random:SEED`` (default: the file recorded by the embedder); its sha256
    must equal the embedder's record. ``detector`` replaces BlazeFace (tests). Raises ``ValueError`` /
    ``media.MediaError`` naming the video for a video without audio, without a face or too short.
    """
    from dicetalk_bench import media
    from dicetalk_bench.preprocessing import crop as cropm
    from dicetalk_bench.preprocessing.audio_features import SAMPLES_PER_FRAME, n_video_frames, whisper_states
    from dicetalk_bench.preprocessing.faces import track
    from dicetalk_bench.preprocessing.whisper import load_whisper

    from .embedder_train import even_frames, load_embedder
    from .pipeline import check_whisper

    video = Path(video)
    embedder, record = load_embedder(embedder_dir)
    cfg = record["config"]
    handle = load_whisper(whisper or record["whisper"]["file"], allow_unverified=allow_unverified)
    check_whisper(record["whisper"], handle.record)
    if not media.probe(video).has_audio:
        raise media.MissingStreamError(video, "has no audio stream; the emotion embedder needs the reference's speech")
    samples = media.read_audio(video, 16000)
    frames = media.read_video(video, fps=25.0).frames
    n = min(len(frames), n_video_frames(len(samples)))
    if n < 1:
        raise ValueError(f"{video}: shorter than one 25 fps frame of video and audio")
    face = track(frames[:n], fps=25.0, detector=detector)
    mats = cropm.crop_matrices(face.boxes_xyxy, face.keypoints, crop)
    idx = even_frames(n, int(cfg["frames_per_clip"]))
    crops = np.stack([cropm.warp(frames[i], mats[i], crop.size) for i in idx])
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 127.5 - 1
    res = int(cfg["resolution"])
    if x.shape[-1] != res:
        x = F.interpolate(x, size=(res, res), mode="bilinear", antialias=True, align_corners=False)
    states = whisper_states(samples[: n * SAMPLES_PER_FRAME], handle.encoder, n)[idx].astype(np.float32)
    with torch.no_grad():
        mu = embedder(x[None], torch.from_numpy(states)[None]).mu
    return mu.reshape(1, -1).numpy().astype(np.float32)
