"""Sampling from a trained tiny checkpoint: generate() API and the sample CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from dicetalk_bench.model import checkpoint as ckpt
from dicetalk_bench.model.pipeline import (SampleConfig, check_whisper, generate, generate_frames,
                                           load_checkpoint_for_sampling)
from dicetalk_bench.model.train_loop import TrainConfig, train

FAST = SampleConfig(steps=2, window=25, shift=7)


@pytest.fixture(scope="module")
def trained(preprocessed, priors_dir, svd_dir, tmp_path_factory):
    cfg = TrainConfig(data_root=preprocessed, emotion_source="class-mean", priors_dir=priors_dir, svd=str(svd_dir),
                      allow_unverified=True,
                      out_dir=tmp_path_factory.mktemp("run"), num_frames=4, resolution=32, steps=2,
                      checkpoint_every=2)
    run = train(cfg, device="cpu")
    return run, ckpt.latest_checkpoint(cfg.out_dir)


def test_checkpoint_loads_the_trained_network(trained):
    run, folder = trained
    model = load_checkpoint_for_sampling(folder)
    for (n, p), (_, q) in zip(run.net.state_dict().items(), model.net.state_dict().items()):
        assert torch.equal(p, q), n
    assert set(model.priors) == set(run.data.priors) and model.resolution == 32


def test_generate_gives_one_frame_per_ground_truth_frame(trained, preprocessed):
    import pyarrow.parquet as pq

    _, folder = trained
    row = pq.read_table(preprocessed / "clips.parquet").to_pylist()[0]
    a = generate(row, folder, seed=0, data_root=preprocessed, cfg=FAST)
    assert a.shape == (row["n_frames"], 32, 32, 3) and a.dtype == np.uint8
    b = generate(row, folder, seed=0, data_root=preprocessed, cfg=FAST)
    np.testing.assert_array_equal(a, b)  # seed derived from the clip id: reproducible
    c = generate(row, folder, seed=0, data_root=preprocessed, cfg=FAST, emotion="angry")
    assert np.abs(a.astype(int) - c.astype(int)).sum() > 0  # swapping the emotion changes the output
    with pytest.raises(ValueError, match="no prior"):
        generate(row, folder, data_root=preprocessed, cfg=FAST, emotion="bored")


def test_short_audio_is_padded_to_a_window_and_cut_back(trained):
    _, folder = trained
    model = load_checkpoint_for_sampling(folder)
    states = np.random.default_rng(0).standard_normal((9, 2, 5, 384)).astype(np.float16)
    frames = generate_frames(model, torch.zeros(3, 32, 32), states, model.priors["happy"],
                             np.array([4, 4, 28, 28], np.float32), FAST)
    assert frames.shape == (9, 3, 32, 32) and frames.abs().max() <= 1


def test_other_audio_encoder_is_refused():
    check_whisper({"sha256": "a"}, {"sha256": "a"})
    with pytest.raises(ValueError, match="audio encoder differs"):
        check_whisper({"sha256": "a", "file": "x"}, {"sha256": "b", "file": "y"})


def test_sample_cli_writes_a_playable_mp4_as_long_as_the_audio(trained, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from dicetalk_bench import media
    from dicetalk_bench.preprocessing.whisper import load_whisper

    monkeypatch.setenv("DICETALK_BENCH_CACHE", str(tmp_path / "cache"))
    _, folder = trained
    # the checkpoint's features came from a stand-in record; point it at the random whisper-tiny we sample with
    state = json.loads((folder / "state.json").read_text())
    state["records"]["whisper"] = load_whisper("random:0").record
    cli_ckpt = tmp_path / "ckpt"
    cli_ckpt.mkdir()
    for f in folder.iterdir():
        (cli_ckpt / f.name).write_bytes(f.read_bytes())
    (cli_ckpt / "state.json").write_text(json.dumps(state))
    Image.fromarray(np.full((48, 40, 3), 128, np.uint8)).save(tmp_path / "face.png")
    audio = (0.3 * np.sin(np.linspace(0, 300, 16000 + 320))).astype(np.float32)  # 1.02 s -> 25 frames
    media.write_audio(tmp_path / "speech.wav", audio, 16000)
    out = tmp_path / "out.mp4"
    from dicetalk_bench.sample import main

    args = ["--checkpoint", str(cli_ckpt), "--image", str(tmp_path / "face.png"), "--audio",
            str(tmp_path / "speech.wav"), "--face-box", "8,8,32,40", "--steps", "2", "--device", "cpu"]
    assert main(args + ["--emotion", "sad", "--out", str(out)]) == 0
    info = media.probe(out)
    assert info.has_video and info.has_audio and info.n_frames == 25 and info.fps == pytest.approx(25.0)
    assert abs(info.duration_s - 1.0) < 0.1
    assert main(args + ["--emotion", "bored", "--out", str(tmp_path / "x.mp4")]) == 1
    assert "bored" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()

    # V-mode: the emotion of a reference video, through an exported embedder whose priors trained the checkpoint
    from skimage import data

    from dicetalk_bench.model.embedder_train import EmbedderTrainConfig
    from dicetalk_bench.model.emotion_embedder import EmbedderConfig, EmotionEmbedder
    from dicetalk_bench.model.pipeline import load_checkpoint_for_sampling
    from dicetalk_bench.model.priors import save_priors

    face = np.asarray(Image.fromarray(data.astronaut()[20:260, 110:350]).resize((128, 128)))
    ref_video = media.write_video(tmp_path / "reference.mp4", np.repeat(face[None], 25, 0), 25.0, audio=audio,
                                  audio_rate=16000)
    assert main(args + ["--emotion", str(ref_video), "--out", str(tmp_path / "v.mp4")]) == 1
    assert "--embedder" in capsys.readouterr().err
    emb_dir = tmp_path / "embedder"
    emb_cfg = EmbedderTrainConfig(resolution=32, frames_per_clip=4,
                                  embedder=EmbedderConfig(d_model=16, num_heads=2, cnn_channels=(8, 8)))
    torch.manual_seed(0)
    from safetensors.torch import save_file

    from dicetalk_bench.config import to_dict

    emb_dir.mkdir()
    save_file(EmotionEmbedder(emb_cfg.embedder).state_dict(), str(emb_dir / "embedder.safetensors"))
    (emb_dir / "embedder.json").write_text(json.dumps({"config": to_dict(emb_cfg), "whisper": state["records"]["whisper"]}))
    save_priors(emb_dir / "priors", {k: v * 2 for k, v in load_checkpoint_for_sampling(cli_ckpt).priors.items()})
    assert main(args + ["--emotion", str(ref_video), "--embedder", str(emb_dir), "--out", str(tmp_path / "v.mp4")]) == 1
    assert "other emotion priors" in capsys.readouterr().err
    save_priors(emb_dir / "priors", load_checkpoint_for_sampling(cli_ckpt).priors)
    assert main(args + ["--emotion", str(ref_video), "--embedder", str(emb_dir), "--out", str(tmp_path / "v.mp4")]) == 0
    assert media.probe(tmp_path / "v.mp4").n_frames == 25


def test_cli_help_imports_no_torch():
    for module in ("dicetalk_bench.sample", "dicetalk_bench.train"):
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", module, "--help"], capture_output=True,
                              text=True)
        assert proc.returncode == 0 and "usage" in proc.stdout
        imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
        assert not {"torch", "diffusers", "av"} & imported  # heavy imports only after argparse
