"""Fixtures of the model tests: a tiny preprocessing output written with the preprocessing writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def write_preprocessed(root: Path, n_frames: int = 40, size: int = 64, seed: int = 0,
                       clips: tuple[tuple[str, str | None, int | None], ...] = (("mead/M001/front/happy/level_2/001", "happy", 2),),
                       whisper: dict | None = None, split: str = "train") -> Path:
    """Write clips.parquet, videos/, faces/ and audio/ as the preprocessing does (docs/data_format.md).

    Each clip: a grey face disc whose mouth opens with a synthetic audio envelope; Whisper states carry the
    envelope on a fixed direction; the face mask box is the disc's box x1.1. ``whisper``: the Whisper record stored
    with the features (default a stand-in record); ``split``: the split of every clip.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from dicetalk_bench import media
    from dicetalk_bench.preprocessing.audio_features import features_table
    from dicetalk_bench.preprocessing.manifest import manifest_table

    rng = np.random.default_rng(seed)
    rows = []
    direction = rng.standard_normal((2, 5, 384)).astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    for k, (clip_id, emotion, level) in enumerate(clips):
        envelope = 0.5 + 0.5 * np.sin(np.arange(n_frames) * (0.7 + 0.2 * k))
        frames = np.zeros((n_frames, size, size, 3), np.uint8)
        cx, cy, r = size / 2, size / 2, size * 0.3
        for t in range(n_frames):
            img = np.full((size, size, 3), (40 + 30 * k) % 256, np.uint8)  # distinct backgrounds, any clip count
            face = (xx - cx) ** 2 + (yy - cy) ** 2 < r**2
            img[face] = (200, 170, 150)
            mouth_h = 1 + envelope[t] * size * 0.08
            mouth = (np.abs(xx - cx) < size * 0.1) & (np.abs(yy - (cy + r * 0.5)) < mouth_h)
            img[mouth] = (90, 20, 30)
            frames[t] = img
        safe = clip_id.replace("/", "__")
        audio = np.sin(np.linspace(0, 200, n_frames * 640)).astype(np.float32) * 0.3
        media.write_video(root / "videos" / f"{clip_id}.mp4", frames, 25.0, audio=audio, audio_rate=16000, crf=10)
        box = np.array([cx - r, cy - r, cx + r, cy + r], np.float32)
        mask = np.clip((box - np.array([cx, cy, cx, cy])) * 1.1 + np.array([cx, cy, cx, cy]), 0, size)
        faces = pa.table({
            "clip_id": pa.array([clip_id] * n_frames),
            "frame": pa.array(np.arange(n_frames, dtype=np.int32)),
            "mask_box_crop": pa.FixedSizeListArray.from_arrays(pa.array(np.tile(mask, n_frames), pa.float32()), 4),
        })
        (root / "faces" / clip_id).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(faces, root / "faces" / f"{clip_id}.parquet")
        states = (envelope[:, None, None, None] * direction[None] + 0.05 * rng.standard_normal(
            (n_frames, 2, 5, 384))).astype(np.float16)
        record = whisper or {"key": "whisper-tiny", "file": "random:0", "sha256": "0" * 64, "calibrated": False}
        table = features_table(clip_id, np.zeros((n_frames, 4, 80), np.float32), states,
                               {"whisper": record, "fps": 25.0})
        (root / "audio" / clip_id).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, root / "audio" / f"{clip_id}.parquet")
        rows.append({"clip_id": clip_id, "dataset": clip_id.split("/")[0], "speaker": "S", "emotion": emotion,
                     "level": level, "split": split, "audio_id": clip_id, "n_frames": n_frames, "fps": 25.0,
                     "crop_size": size, "video": f"videos/{clip_id}.mp4", "faces": f"faces/{clip_id}.parquet",
                     "audio_features": f"audio/{clip_id}.parquet", "status": "ok"})
        del safe
    pq.write_table(manifest_table(rows), root / "clips.parquet")
    return root


@pytest.fixture(scope="session")
def preprocessed_writer():
    """:func:`write_preprocessed`, for tests that need other clips or sizes."""
    return write_preprocessed


@pytest.fixture(scope="session")
def preprocessed(tmp_path_factory) -> Path:
    return write_preprocessed(tmp_path_factory.mktemp("preprocessed"))


@pytest.fixture(scope="session")
def priors_dir(tmp_path_factory) -> Path:
    from dicetalk_bench.weights import write_random_priors

    folder = tmp_path_factory.mktemp("priors") / "emo"
    write_random_priors(folder, 0)
    return folder


@pytest.fixture(scope="session")
def svd_dir(tmp_path_factory) -> Path:
    from dicetalk_bench.model.svd import write_random_svd_xt

    folder = tmp_path_factory.mktemp("svd") / "svd"
    write_random_svd_xt(folder, 0)
    return folder


@pytest.fixture(autouse=True)
def _restore_grad_mode():
    """preprocessing.whisper.load_encoder_from_folder switches autograd off process-wide (reported to the lead);
    keep that from leaking from one model test into the next."""
    import torch

    enabled = torch.is_grad_enabled()
    yield
    torch.set_grad_enabled(enabled)


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one intra-op thread is faster on a shared 2-core machine (more threads only spin)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def rife_file(tmp_path_factory) -> Path:
    """Random RIFE HDv3 weights in the release's file format (``module.``-prefixed ``flownet.pkl``)."""
    from dicetalk_bench.model.rife import write_random_rife

    path = tmp_path_factory.mktemp("rife") / "flownet.pkl"
    write_random_rife(path, 0)
    return path
