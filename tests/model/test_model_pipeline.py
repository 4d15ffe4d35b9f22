"""Sampling from a trained tiny checkpoint: generate() API and the sample CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from dicetalk_bench.model import checkpoint as ckpt
from dicetalk_bench.model.pipeline import (SampleConfig, attach_rife, check_whisper, frame_rate_for, generate,
                                           generate_frames, load_checkpoint_for_sampling)
from dicetalk_bench.model.train_loop import TrainConfig, train


@pytest.fixture(scope="module")
def FAST(rife_file):  # noqa: N802 - the fast sampling settings of these tests
    return SampleConfig(steps=2, window=25, shift=7, rife=str(rife_file), allow_unverified=True)


@pytest.fixture(scope="module")
def trained(preprocessed, priors_dir, svd_dir, tmp_path_factory):
    cfg = TrainConfig(model="tiny", data_root=preprocessed, emotion_source="class-mean", priors_dir=priors_dir, svd=str(svd_dir),
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


def test_generate_gives_one_frame_per_ground_truth_frame(trained, preprocessed, FAST):
    import dataclasses

    import pyarrow.parquet as pq

    _, folder = trained
    row = pq.read_table(preprocessed / "clips.parquet").to_pylist()[0]
    assert frame_rate_for(load_checkpoint_for_sampling(folder).train_config) == "release"  # frame_stride 2
    a = generate(row, folder, seed=0, data_root=preprocessed, cfg=FAST)
    assert a.shape == (row["n_frames"], 32, 32, 3) and a.dtype == np.uint8
    native = generate(row, folder, seed=0, data_root=preprocessed, cfg=dataclasses.replace(FAST, frame_rate="native"))
    assert native.shape == a.shape and np.abs(native.astype(int) - a.astype(int)).sum() > 0
    b = generate(row, folder, seed=0, data_root=preprocessed, cfg=FAST)
    np.testing.assert_array_equal(a, b)  # seed derived from the clip id: reproducible
    c = generate(row, folder, seed=0, data_root=preprocessed, cfg=FAST, emotion="angry")
    assert np.abs(a.astype(int) - c.astype(int)).sum() > 0  # swapping the emotion changes the output
    with pytest.raises(ValueError, match="no prior"):
        generate(row, folder, data_root=preprocessed, cfg=FAST, emotion="bored")


@pytest.mark.parametrize("n_frames", [1, 2, 3, 9, 10])
def test_any_audio_of_one_generated_frame_gives_one_frame_per_audio_frame(trained, FAST, n_frames):
    """Release mode: ceil(T / 2) generated frames, 2n - 1 after RIFE, the last repeated when T is even; short
    clips are filled by the pad frames. Native mode: T frames. Below one generated frame: refused."""
    import dataclasses

    _, folder = trained
    model = load_checkpoint_for_sampling(folder)
    attach_rife(model, FAST.rife, allow_unverified=True)
    states = np.random.default_rng(0).standard_normal((n_frames, 2, 5, 384)).astype(np.float16)
    box = np.array([4, 4, 28, 28], np.float32)
    native = generate_frames(model, torch.zeros(3, 32, 32), states, model.priors["happy"], box,
                             dataclasses.replace(FAST, frame_rate="native"))
    assert native.shape == (n_frames, 3, 32, 32) and native.abs().max() <= 1
    if n_frames < 2:
        with pytest.raises(ValueError, match="shorter than one generated frame.*1280 samples"):
            generate_frames(model, torch.zeros(3, 32, 32), states, model.priors["happy"], box, FAST)
        return
    release = generate_frames(model, torch.zeros(3, 32, 32), states, model.priors["happy"], box, FAST)
    assert release.shape == (n_frames, 3, 32, 32) and release.abs().max() <= 1
    if n_frames % 2 == 0:
        assert torch.equal(release[-1], release[-2])


def test_release_mode_needs_rife_and_fp16_is_refused_on_the_cpu(trained, FAST):
    _, folder = trained
    model = load_checkpoint_for_sampling(folder)
    states = np.zeros((4, 2, 5, 384), np.float16)
    with pytest.raises(ValueError, match="rife-hdv3"):
        generate_frames(model, torch.zeros(3, 32, 32), states, model.priors["happy"], np.array([4, 4, 28, 28]), FAST)
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        load_checkpoint_for_sampling(folder, "cpu", dtype="fp16")
    with pytest.raises(ValueError, match="frame_stride"):
        frame_rate_for({})
    assert frame_rate_for({"frame_stride": 1}) == "native" and frame_rate_for({"frame_stride": 2}, "native") == "native"


def test_bf16_frames_are_close_to_fp32(trained, FAST):
    """The network in bfloat16 (8 mantissa bits) against fp32: same weights and noise, native mode, 2 steps, the
    release's guidance scales (3, 6), which amplify the rounding of the branch differences. Stated tolerance: the
    mean |difference| stays below a quarter of what another noise seed changes, and below 0.06 on frames in
    [-1, 1]. Measured on a random tiny network: 0.034 (max 0.34) against 0.20 between seeds; 0.011 with both
    guidance scales 1."""
    import dataclasses

    _, folder = trained
    cfg = dataclasses.replace(FAST, frame_rate="native")
    states = np.random.default_rng(0).standard_normal((6, 2, 5, 384)).astype(np.float16)
    out = {}
    for dtype in ("fp32", "bf16"):
        model = load_checkpoint_for_sampling(folder, "cpu", dtype=dtype)
        assert next(model.net.parameters()).dtype == (torch.float32 if dtype == "fp32" else torch.bfloat16)
        for seed in (0, 1) if dtype == "fp32" else (0,):
            out[dtype, seed] = generate_frames(model, torch.zeros(3, 32, 32), states, model.priors["happy"],
                                               np.array([4, 4, 28, 28], np.float32),
                                               dataclasses.replace(cfg, dtype=dtype), seed=seed)
    assert out["bf16", 0].dtype == torch.float32
    rounding = float((out["fp32", 0] - out["bf16", 0]).abs().mean())
    seeds = float((out["fp32", 0] - out["fp32", 1]).abs().mean())
    assert rounding < 0.25 * seeds and rounding < 0.06, (rounding, seeds)


def test_other_audio_encoder_is_refused():
    check_whisper({"sha256": "a"}, {"sha256": "a"})
    with pytest.raises(ValueError, match="audio encoder differs"):
        check_whisper({"sha256": "a", "file": "x"}, {"sha256": "b", "file": "y"})


def test_sample_cli_writes_a_playable_mp4_as_long_as_the_audio(trained, tmp_path, monkeypatch, capsys, rife_file):
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
            str(tmp_path / "speech.wav"), "--face-box", "8,8,32,40", "--steps", "2", "--device", "cpu",
            "--rife", str(rife_file), "--allow-unverified"]
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


def test_sample_cli_refuses_bad_inputs_before_loading_the_model(trained, tmp_path, monkeypatch, capsys, rife_file):
    """An image without a face and audio shorter than one generated frame stop the CLI, naming the file and what
    was expected, before any model is loaded (loading is replaced by a failure here)."""
    from PIL import Image

    from dicetalk_bench import media
    from dicetalk_bench.model import pipeline
    from dicetalk_bench.sample import main

    _, folder = trained
    for loader in ("load_checkpoint_for_sampling", "load_model"):
        monkeypatch.setattr(pipeline, loader,
                            lambda *a, **k: pytest.fail("the model was loaded before the inputs were checked"))
    Image.fromarray(np.full((64, 48, 3), 128, np.uint8)).save(tmp_path / "blank.png")
    media.write_audio(tmp_path / "long.wav", (0.3 * np.sin(np.linspace(0, 300, 16000))).astype(np.float32), 16000)
    media.write_audio(tmp_path / "short.wav", np.full(1279, 0.1, np.float32), 16000)  # 1 frame < 2 needed
    base = ["--checkpoint", str(folder), "--out", str(tmp_path / "x.mp4"), "--device", "cpu", "--rife",
            str(rife_file), "--allow-unverified"]
    assert main(base + ["--image", str(tmp_path / "blank.png"), "--audio", str(tmp_path / "long.wav")]) == 1
    err = capsys.readouterr().err
    assert "blank.png: no face found" in err and "--face-box" in err
    assert main(base + ["--image", str(tmp_path / "blank.png"), "--face-box", "8,8,40,56",
                        "--audio", str(tmp_path / "short.wav")]) == 1
    err = capsys.readouterr().err
    assert "short.wav" in err and "shorter than one generated frame" in err and "1280 samples" in err
    assert main(base + ["--image", str(tmp_path / "blank.png"), "--face-box", "8,8,40,56", "--audio",
                        str(tmp_path / "long.wav"), "--dtype", "fp16"]) == 1
    assert "fp16 needs a CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()


def test_sample_cli_release_crop_and_keep_resolution(trained, tmp_path, monkeypatch, rife_file):
    """--crop release on a landscape portrait, --keep-resolution writes the crop's size (even sides)."""
    from PIL import Image

    from dicetalk_bench import media
    from dicetalk_bench.model.release_image import release_crop_box
    from dicetalk_bench.preprocessing.whisper import load_whisper
    from dicetalk_bench.sample import main

    monkeypatch.setenv("DICETALK_BENCH_CACHE", str(tmp_path / "cache"))
    _, folder = trained
    state = json.loads((folder / "state.json").read_text())
    state["records"]["whisper"] = load_whisper("random:0").record
    cli_ckpt = tmp_path / "ckpt"
    cli_ckpt.mkdir()
    for f in folder.iterdir():
        (cli_ckpt / f.name).write_bytes(f.read_bytes())
    (cli_ckpt / "state.json").write_text(json.dumps(state))
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 100, 3), np.uint8)).save(tmp_path / "wide.png")
    media.write_audio(tmp_path / "speech.wav", (0.3 * np.sin(np.linspace(0, 300, 7 * 640))).astype(np.float32),
                      16000)
    box = "70,20,90,40"  # near the right border: the crop is clamped there
    x1, y1, x2, y2 = release_crop_box((70, 20, 90, 40), 100, 60)
    assert (x1, y1, x2, y2) == (60, 10, 100, 50)
    out = tmp_path / "crop.mp4"
    assert main(["--checkpoint", str(cli_ckpt), "--image", str(tmp_path / "wide.png"), "--audio",
                 str(tmp_path / "speech.wav"), "--face-box", box, "--steps", "1", "--device", "cpu", "--rife",
                 str(rife_file), "--allow-unverified", "--crop", "release", "--keep-resolution", "--emotion", "happy",
                 "--out", str(out)]) == 0
    frames = media.read_video(out).frames
    assert frames.shape == (7, 40, 40, 3)  # 7 audio frames (release mode: 4 generated, 7 after RIFE)
