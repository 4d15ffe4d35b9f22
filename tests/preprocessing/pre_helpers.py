"""Plain helpers for the preprocessing tests (unique module name; imported as `from pre_helpers import ...`)."""

from __future__ import annotations

import numpy as np


def face_patch(size: int):
    """The astronaut's face (skimage.data.astronaut, public domain) resized to (size, size, 3) uint8."""
    import cv2
    from skimage import data

    return cv2.resize(data.astronaut()[40:240, 130:330], (size, size), interpolation=cv2.INTER_AREA)


def speech_like(seconds: float, rate: int = 16000, seed: int = 0, amp: float = 0.3):
    """Amplitude-modulated harmonic tone + a little noise: non-silent, deterministic."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)
    x = amp * env * (np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 360 * t)) + 0.005 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def moving_face_frames(T: int, H: int = 128, W: int = 128, size: int = 56, dx: float = 1.0) -> np.ndarray:
    """(T, H, W, 3) uint8: the face patch moving right by ``dx`` px per frame from (20, 30), clipped at the edges."""
    builder_pos = np.stack([20 + dx * np.arange(T), np.full(T, 30.0)], 1)
    frames = np.full((T, H, W, 3), 90, np.uint8)
    patch = face_patch(size)
    for t in range(T):
        x, y = int(round(builder_pos[t, 0])), int(round(builder_pos[t, 1]))
        x0, x1 = max(x, 0), min(x + size, W)
        if x1 > x0:
            frames[t, y:y + size, x0:x1] = patch[:, x0 - x:x1 - x]
    return frames


def write_clip(path, frames, fps=25.0, audio=None, rate=16000):
    from dicetalk_bench import media

    path.parent.mkdir(parents=True, exist_ok=True)
    return media.write_video(path, frames, fps, audio=audio, audio_rate=rate if audio is not None else None,
                             preset="ultrafast")


def fast_config(**changes):
    """A PreprocessConfig for tests: 64 px crops, x264 ultrafast, short-range BlazeFace, stride 3, the random
    whisper-tiny of seed 0 (no real Whisper weights in tests)."""
    from dicetalk_bench.preprocessing.pipeline import PreprocessConfig, with_overrides

    base = with_overrides(PreprocessConfig(), crop=dict(size=64), faces=dict(stride=3, model="short"),
                          preset="ultrafast", audio=dict(whisper="random:0"))
    return with_overrides(base, **changes) if changes else base
