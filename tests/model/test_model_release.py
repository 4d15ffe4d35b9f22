"""Official release folders wherever a checkpoint is accepted: sample, evaluate, convert_release; bad release inputs."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dicetalk_bench import weights
from dicetalk_bench.model import official
from dicetalk_bench.model import checkpoint_kind as ck
from dicetalk_bench.model.checkpoint_kind import RELEASE_FILES
from dicetalk_bench.model.priors import PRIOR_EMOTIONS, save_priors
from dicetalk_bench.model.release import (LABEL_UNPINNED, LABEL_USER_PIN, ReleaseFolderError, ReleaseSources,
                                          load_release)

FROM_SVD = ("conv_in.weight", "conv_in.bias")  # left out of the tiny unet.pth: they must come from SVD-xt


def write_release_folder(folder: Path, seed: int = 5) -> Path:
    """Random tiny weights under the release's file and key names, and eight random priors in emo/."""
    folder.mkdir(parents=True)
    official.write_random_unet(folder / "unet.pth", seed)
    state = torch.load(folder / "unet.pth", weights_only=True)
    torch.save({k: v for k, v in state.items() if k not in FROM_SVD}, folder / "unet.pth")
    official.write_random_pose_guider(folder / "pose_guider.pth", seed + 1)
    official.write_random_audio_linear(folder / "audio_linear.pth", seed + 2)
    official.write_random_emo_model(folder / "emo_model.pth", seed + 3)
    rng = np.random.default_rng(seed)
    save_priors(folder / "emo", {e: rng.standard_normal((1, 256)).astype(np.float32) for e in PRIOR_EMOTIONS})
    return folder


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    return write_release_folder(tmp_path_factory.mktemp("checkpoints") / "DICE-Talk")


@pytest.fixture(scope="module")
def sources(svd_dir) -> ReleaseSources:
    return ReleaseSources(svd=str(svd_dir), whisper="random:0", allow_unverified=True)


def _sample_inputs(tmp_path: Path) -> list[str]:
    from PIL import Image

    from dicetalk_bench import media

    Image.fromarray(np.full((48, 40, 3), 128, np.uint8)).save(tmp_path / "face.png")
    audio = (0.3 * np.sin(np.linspace(0, 300, 16000 + 320))).astype(np.float32)  # 1.02 s -> 25 frames
    media.write_audio(tmp_path / "speech.wav", audio, 16000)
    return ["--image", str(tmp_path / "face.png"), "--audio", str(tmp_path / "speech.wav"), "--face-box", "8,8,32,40",
            "--steps", "2", "--device", "cpu", "--emotion", "sad"]


def test_a_release_folder_is_its_own_kind_and_what_the_loaders_refuse_is_named(release, tmp_path):
    from dicetalk_bench.model.pipeline import load_model
    from dicetalk_bench.model.train_loop import init_from_checkpoint

    assert ck.identify_checkpoint(release).name == ck.RELEASE_FOLDER
    assert ck.generator_checkpoint(release, command="sample") == release
    (tmp_path / "empty").mkdir()
    with pytest.raises(ck.CheckpointKindError, match="not a checkpoint this toolkit recognises; sampling needs"):
        load_model(tmp_path / "empty")
    embedder = tmp_path / "embedder"  # another kind of checkpoint: named, before any tensor is read
    embedder.mkdir()
    (embedder / "embedder.json").write_text("{}")
    with pytest.raises(ck.CheckpointKindError, match="this is an emotion-embedder run .*; init_from needs"):
        init_from_checkpoint(embedder, None, torch.device("cpu"))  # type: ignore[arg-type]


def test_unet_pth_loads_over_the_svd_unet_and_provenance_is_labelled(release, sources, svd_dir):
    from dicetalk_bench.model.unet import DiceTalkUNet

    rel = load_release(release, sources, encoders=False)
    saved = torch.load(release / "unet.pth", weights_only=True)
    ours = rel.net.unet.state_dict()
    for name, value in saved.items():
        assert torch.equal(ours[name], value), name
    svd = DiceTalkUNet.from_pretrained(svd_dir / "unet").state_dict()
    for name in FROM_SVD:
        assert torch.equal(ours[name], svd[name]) and not torch.equal(svd[name], torch.zeros_like(svd[name]))
    for key, (attr, _, _) in official.COMPONENTS.items():
        if key != "dicetalk-unet":
            for name, value in torch.load(release / RELEASE_FILES[key], weights_only=True).items():
                assert torch.equal(getattr(rel.net, attr).state_dict()[name], value), (key, name)
    assert rel.cfg.name == "tiny" and rel.provenance["frame_stride"] == 2
    assert rel.provenance["label"] == LABEL_UNPINNED and rel.provenance["unet_keys_from_svd"] == 2
    assert {r["verified_by"] for r in rel.provenance["files"].values()} == {"unverified"}
    assert set(rel.priors) == set(PRIOR_EMOTIONS)
    assert rel.records["whisper"]["file"] == "random:0" and rel.records["svd"]["file"] == str(svd_dir)


def test_release_without_pins_is_refused_and_user_pins_change_the_label(release, svd_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DICETALK_BENCH_WEIGHTS_DIR", str(tmp_path / "wdir"))
    with pytest.raises(weights.WeightsError, match=r"unet\.pth.*cannot be verified.*--pin"):
        load_release(release, ReleaseSources(svd=str(svd_dir), whisper="random:0"), encoders=False)
    for key, name in RELEASE_FILES.items():
        weights.pin(key, weights.file_sha256(release / name), release / name)
    rel = load_release(release, ReleaseSources(svd=str(svd_dir), whisper="random:0", allow_unverified=True),
                       encoders=False)
    assert rel.provenance["label"] == LABEL_USER_PIN


def _conftest():
    import importlib.util

    spec = importlib.util.spec_from_file_location("model_tests_conftest", Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record_frames(monkeypatch) -> list[torch.Tensor]:
    """The frames every sampling call returns, before the H.264 encoding (whose bits may vary with x264's
    automatic thread count, so equality is checked on the generated frames themselves)."""
    from dicetalk_bench.model import pipeline

    frames: list[torch.Tensor] = []
    original = pipeline.generate_frames

    def recording(*args, **kwargs):
        frames.append(original(*args, **kwargs))
        return frames[-1]

    monkeypatch.setattr(pipeline, "generate_frames", recording)
    return frames


def test_release_folder_and_its_conversion_sample_the_same_frames(release, svd_dir, tmp_path, monkeypatch):
    from dicetalk_bench import convert_release, media
    from dicetalk_bench.sample import main

    frames = _record_frames(monkeypatch)
    common = _sample_inputs(tmp_path)
    # native frame rate: this compares the loading of the two forms (release mode adds RIFE, tested elsewhere)
    assert main(["--checkpoint", str(release), "--svd", str(svd_dir), "--whisper", "random:0", "--allow-unverified",
                 "--frame-rate", "native", *common, "--out", str(tmp_path / "release.mp4")]) == 0
    converted = tmp_path / "converted"
    assert convert_release.main([str(release), str(converted), "--svd", str(svd_dir), "--whisper", "random:0",
                                 "--allow-unverified"]) == 0
    state = json.loads((converted / "state.json").read_text())
    assert state["kind"] == "converted-release" and state["config"]["frame_stride"] == 2
    assert state["release"]["label"] == LABEL_UNPINNED and ck.identify_checkpoint(converted).name == ck.GENERATOR_CHECKPOINT
    assert main(["--checkpoint", str(converted), "--frame-rate", "native", *common,
                 "--out", str(tmp_path / "converted.mp4")]) == 0
    assert len(frames) == 2 and frames[0].shape == (25, 3, 32, 32) and frames[0].std() > 0.01
    assert torch.equal(frames[0], frames[1])
    for name in ("release", "converted"):
        info = media.probe(tmp_path / f"{name}.mp4")
        assert info.n_frames == 25 and info.has_audio
    assert convert_release.main([str(release), str(converted), "--svd", str(svd_dir), "--allow-unverified"]) == 1


def test_evaluate_scores_a_release_folder_like_its_conversion(release, svd_dir, tmp_path, monkeypatch):
    from dicetalk_bench import convert_release, evaluate, media
    from dicetalk_bench.preprocessing.whisper import whisper_record
    from dicetalk_bench.reports.runs import read_run

    write_preprocessed = _conftest().write_preprocessed
    frames = _record_frames(monkeypatch)
    processed = write_preprocessed(tmp_path / "processed", n_frames=30, whisper=whisper_record("random:0"),
                                   split="test")
    converted = tmp_path / "converted"
    assert convert_release.main([str(release), str(converted), "--svd", str(svd_dir), "--whisper", "random:0",
                                 "--allow-unverified"]) == 0
    for name, ck in (("release", release), ("converted", converted)):
        out = tmp_path / name
        rc = evaluate.main(["--checkpoint", str(ck), "--processed", str(processed), "--metrics", "psnr", "--method",
                            name, "--dataset", "mead", "--out", str(out), "--sample-steps", "2", "--weights",
                            f"svd-xt={svd_dir}", "--weights", "whisper-tiny=random:0", "--allow-unverified",
                            "--frame-rate", "native"])
        assert rc == 0
        prov = read_run(out / "results" / "mead" / f"{name}.json").provenance["checkpoint"]
        assert prov["n_generated"] == 1 and prov["frame_stride"] == 2
        assert prov["label"] == LABEL_UNPINNED and prov["release"]["label"] == LABEL_UNPINNED
        assert prov["kind"] == ("release" if name == "release" else "converted-release")
        video = next((out / "generated" / name / "mead").rglob("*.mp4"))  # generated/<method>/<clip id>.mp4
        assert media.read_video(video).frames.shape == (30, 32, 32, 3)
    assert len(frames) == 2 and frames[0].shape == (30, 3, 32, 32)
    assert torch.equal(frames[0], frames[1])


# ---------------------------------------------------------------------------------------------- bad release inputs


def _truncate(folder: Path) -> None:
    data = (folder / "unet.pth").read_bytes()
    (folder / "unet.pth").write_bytes(data[: len(data) // 2])


def _reshape(file: str, key: str):
    def edit(folder: Path) -> None:
        state = torch.load(folder / file, weights_only=True)
        state[key] = torch.zeros(3, 3)
        torch.save(state, folder / file)
    return edit


def _prior(name: str, payload) -> callable:
    def edit(folder: Path) -> None:
        np.save(folder / "emo" / name, np.array(payload, dtype=object), allow_pickle=True)
    return edit


MU = np.zeros((1, 256), np.float32)
BAD_INPUTS = {
    "missing-file": (lambda f: (f / "pose_guider.pth").unlink(),
                     r"missing pose_guider\.pth \(weights registry key dicetalk-pose-guider\)"),
    "truncated": (_truncate, r"unet\.pth: expected a PyTorch state dict.*truncated"),
    "wrong-shape-audio": (_reshape("audio_linear.pth", "proj2.weight"),
                          r"audio_linear\.pth tensor proj2\.weight has shape \(3, 3\), expected \(64, 64\)"),
    "wrong-shape-unet": (_reshape("unet.pth", "conv_out.weight"),
                         r"unet\.pth does not fit.*wrong shape: conv_out\.weight \(3, 3\)"),
    "prior-name": (_prior("joy.npy", {"mu": MU}), r"joy\.npy.*not one of the eight MEAD emotions"),
    "prior-dtype": (_prior("sad.npy", {"mu": MU.astype(np.float64)}), r"sad\.npy.*not the release format"),
    "prior-shape": (_prior("fear.npy", {"mu": MU.reshape(256)}), r"fear\.npy.*not the release format"),
    "prior-extra-key": (_prior("happy.npy", {"mu": MU, "sigma": MU}), r"happy\.npy.*not the release format"),
    "prior-no-mu": (_prior("angry.npy", {"sigma": MU}), r"angry\.npy.*no 'mu' entry.*release format"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_release_input_is_refused_before_sampling(case, release, svd_dir, tmp_path, monkeypatch, capsys):
    from dicetalk_bench import convert_release
    from dicetalk_bench.model import pipeline
    from dicetalk_bench.sample import main

    def never(*args, **kwargs):
        raise AssertionError("sampling started although the release folder is bad")

    monkeypatch.setattr(pipeline, "generate_frames", never)
    edit, message = BAD_INPUTS[case]
    bad = tmp_path / "DICE-Talk"
    shutil.copytree(release, bad)
    edit(bad)
    out = tmp_path / "out.mp4"
    rc = main(["--checkpoint", str(bad), "--svd", str(svd_dir), "--whisper", "random:0", "--allow-unverified",
               *_sample_inputs(tmp_path), "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and not out.exists()
    assert re.search(message, err, flags=re.S), err
    with pytest.raises(ReleaseFolderError, match=message):
        load_release(bad, ReleaseSources(svd=str(svd_dir), whisper="random:0", allow_unverified=True),
                     encoders=False)
    assert convert_release.main([str(bad), str(tmp_path / "conv"), "--svd", str(svd_dir), "--allow-unverified"]) == 1
    assert not (tmp_path / "conv").exists() and not list(tmp_path.glob("conv.tmp*"))


# ---------------------------------------------------------------------------------------------- fine-tuning


def test_init_from_starts_a_new_run_from_converted_weights(release, svd_dir, priors_dir, preprocessed, tmp_path):
    from dicetalk_bench.model.checkpoint import latest_checkpoint, read_checkpoint
    from dicetalk_bench.model.release import convert_release
    from dicetalk_bench.model.train_loop import TrainConfig, resume, setup, train
    from dicetalk_bench.preprocessing.whisper import whisper_record

    processed = _conftest().write_preprocessed(tmp_path / "processed", whisper=whisper_record("random:0"))
    converted = convert_release(release, tmp_path / "converted", ReleaseSources(svd=str(svd_dir), whisper="random:0",
                                                                                 allow_unverified=True))
    start = read_checkpoint(converted).model
    cfg = TrainConfig(model="tiny", data_root=processed, emotion_source="class-mean", priors_dir=priors_dir,
                      svd=str(svd_dir),
                      allow_unverified=True, out_dir=tmp_path / "run", num_frames=4, resolution=32, steps=1,
                      checkpoint_every=1, init_from=converted, memory_check=False)
    run = setup(cfg, "cpu")
    assert run.step == 0 and run.records["init_from"]["label"] == LABEL_UNPINNED
    for name, value in run.net.state_dict().items():  # the first step starts from the converted weights
        assert torch.equal(value, start[name]), name
    train(cfg, device="cpu")
    step1 = read_checkpoint(latest_checkpoint(tmp_path / "run"))
    assert step1.step == 1 and step1.state["records"]["init_from"]["folder"] == str(converted)
    assert any(not torch.equal(step1.model[k], start[k]) for k in start)  # it trained
    # --resume keeps meaning "continue this run": its own latest checkpoint, not init_from again
    resumed = resume(setup(cfg, "cpu"))
    assert resumed.step == 1
    for name, value in resumed.net.state_dict().items():
        assert torch.equal(value, step1.model[name]), name
    # features of other Whisper weights than the converted release's are refused; so is a release folder itself
    with pytest.raises(ValueError, match="other Whisper weights"):
        setup(TrainConfig(**{**cfg.__dict__, "data_root": preprocessed, "out_dir": tmp_path / "x"}), "cpu")
    with pytest.raises(ValueError, match="convert it first"):
        setup(TrainConfig(**{**cfg.__dict__, "init_from": release, "out_dir": tmp_path / "y"}), "cpu")
