"""Session fixtures for the preprocessing tests: a private cache folder, a random whisper-tiny folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pre_helpers import face_patch, moving_face_frames, speech_like, write_clip


@pytest.fixture(scope="session")
def pre_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private DICETALK_BENCH_CACHE for the session (random weights are written there, not in ~/.cache)."""
    d = tmp_path_factory.mktemp("pre_cache")
    os.environ["DICETALK_BENCH_CACHE"] = str(d)
    return d


@pytest.fixture(scope="session")
def whisper_random(pre_cache: Path) -> Path:
    """The random whisper-tiny folder for seed 0, written once through the registry builder."""
    from dicetalk_bench.preprocessing.whisper import ensure_random_whisper_tiny

    return ensure_random_whisper_tiny(0)



@pytest.fixture(scope="session")
def make_face_frames():
    """Callable building (T, H, W, 3) uint8 frames with face patches at given top-left positions per frame.

    ``faces`` is a list of (size, positions) where positions is a (T, 2) array of (x, y) top-left corners;
    a patch partly outside the frame is clipped.
    """
    import numpy as np

    def build(T: int, H: int, W: int, faces):
        frames = np.full((T, H, W, 3), 90, np.uint8)
        for size, pos in faces:
            patch = face_patch(size)
            for t in range(T):
                x, y = int(round(pos[t][0])), int(round(pos[t][1]))
                x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + size, W), min(y + size, H)
                if x1 > x0 and y1 > y0:
                    frames[t, y0:y1, x0:x1] = patch[y0 - y:y1 - y, x0 - x:x1 - x]
        return frames

    return build





@pytest.fixture(scope="session")
def mini_mead(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny real MEAD tree: M003 happy/level_1/001 in 2 views (shared m4a) + W011 neutral/level_1/002.

    Videos are 128x128, 30 fps (resampled to 25 by the pipeline), 1.2 s; the face is the astronaut's.
    """
    from dicetalk_bench import media

    root = tmp_path_factory.mktemp("mini_mead") / "mead"
    T = 36  # 1.2 s at 30 fps
    write_clip(root / "M003/video/front/happy/level_1/001.mp4", moving_face_frames(T), fps=30.0, audio=speech_like(1.2))
    write_clip(root / "M003/video/left_30/happy/level_1/001.mp4", moving_face_frames(T, dx=0.0), fps=30.0)
    (root / "M003/audio/happy/level_1").mkdir(parents=True)
    media.write_audio(root / "M003/audio/happy/level_1/001.m4a", speech_like(1.2, seed=1), 16000)
    write_clip(root / "W011/video/front/neutral/level_1/002.mp4", moving_face_frames(T, size=64, dx=-0.5), fps=30.0)
    (root / "W011/audio/neutral/level_1").mkdir(parents=True)
    media.write_audio(root / "W011/audio/neutral/level_1/002.m4a", speech_like(1.2, seed=2), 16000)
    return root
