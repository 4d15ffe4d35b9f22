"""The whole chain: demo data -> preprocess -> embedder -> generator -> sample, every stage from its CLI,
at tiny size on the CPU, each stage reading the previous stage's files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SPEAKERS = ("M005", "M007", "W009")  # two training speakers (contrastive positives) and one EAT test speaker


def _cli(module: str, *args: str, cwd: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", f"dicetalk_bench.{module}", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=900, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, f"{module} {' '.join(args)}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Path:
    from dicetalk_bench.demo_data import build_demo

    d = tmp_path_factory.mktemp("e2e")
    build_demo(d / "raw", size="test", datasets=("mead",))
    _cli("preprocess", "--dataset", "mead", "--root", str(d / "raw" / "mead"), "--out", str(d / "processed"),
         "--speakers", *SPEAKERS, "--views", "front", "--workers", "0", "--set", "crop.size=64", "--set",
         "preset=ultrafast", "--whisper", "random:0", "--no-progress", cwd=d)
    _cli("train_embedder", f"data_root={d / 'processed'}", f"out_dir={d / 'embedder'}", "steps=10",
         "clips_per_batch=8", "frames_per_clip=4", "resolution=32", "checkpoint_every=5", cwd=d)
    _cli("train", "--device", "cpu", "model=tiny", "svd=random:0", f"data_root={d / 'processed'}", f"embedder_dir={d / 'embedder'}",
         f"out_dir={d / 'gen'}", "steps=4", "checkpoint_every=2", "num_frames=4", "resolution=32", cwd=d)
    return d


def test_every_stage_reads_the_previous_one(chain) -> None:
    import pyarrow.parquet as pq

    clips = pq.read_table(chain / "processed" / "clips.parquet").to_pandas()
    assert len(clips) > 0 and set(clips["status"]) == {"ok"} and set(clips["speaker"]) == set(SPEAKERS)
    emb = json.loads((chain / "embedder" / "embedder.json").read_text())
    assert emb["train_speakers"] == ["M005", "M007"] and emb["eval"]["split"] == "test"
    state = json.loads((chain / "gen" / "checkpoints" / "step_0000004" / "state.json").read_text())
    assert state["step"] == 4
    # the generator was trained on the embedder's priors and on the features of the embedder's Whisper weights
    from dicetalk_bench.model.checkpoint import read_checkpoint
    from dicetalk_bench.model.priors import load_priors

    stored = read_checkpoint(chain / "gen" / "checkpoints" / "step_0000004").priors
    for name, prior in load_priors(chain / "embedder" / "priors").items():
        np.testing.assert_array_equal(np.asarray(stored[name]).reshape(-1), prior.reshape(-1))
    assert state["records"]["whisper"]["sha256"] == emb["whisper"]["sha256"]


@pytest.mark.parametrize("mode", ["name", "reference-video"])
def test_sample_writes_a_playable_mp4_as_long_as_its_audio(chain, mode: str, tmp_path) -> None:
    from PIL import Image

    from dicetalk_bench import media

    raw = chain / "raw" / "mead"
    first = media.read_video(chain / "processed" / "videos" / "mead" / "W009" / "front" / "happy" / "level_1" /
                             "001.mp4", max_frames=1).frames[0]
    Image.fromarray(first).save(tmp_path / "face.png")
    audio = raw / "W009" / "audio" / "sad" / "level_3" / "028.m4a"
    if mode == "name":
        emotion = ["--emotion", "happy"]
    else:
        emotion = ["--emotion", str(raw / "M003" / "video" / "front" / "angry" / "level_3" / "028.mp4"),
                   "--embedder", str(chain / "embedder")]
    out = tmp_path / f"{mode}.mp4"
    from dicetalk_bench.model.rife import write_random_rife

    write_random_rife(tmp_path / "flownet.pkl", 0)  # the generator trained at frame_stride 2: release mode + RIFE
    _cli("sample", "--checkpoint", str(chain / "gen"), "--image", str(tmp_path / "face.png"), "--audio", str(audio),
         *emotion, "--out", str(out), "--steps", "2", "--device", "cpu", "--allow-unverified",
         "--rife", str(tmp_path / "flownet.pkl"), cwd=tmp_path)
    info, speech = media.probe(out), media.probe(audio)
    assert info.has_video and info.has_audio and info.fps == pytest.approx(25.0)
    assert info.n_frames == int(speech.duration_s * 25 + 1e-6)
    assert abs(info.duration_s - speech.duration_s) < 0.1
    frames = media.read_video(out).frames
    assert frames.shape[1:] == (32, 32, 3) and frames.std() > 1.0  # decoded pictures, not a constant
