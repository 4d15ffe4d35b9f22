"""Cheap checks first: sample, train and train_embedder refuse bad arguments and missing inputs before any model
loads or any output folder is made; checkpoint kinds are identified from their files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dicetalk_bench.model import checkpoint_kind as ck


def _generator_checkpoint(root: Path, emotions=("happy", "sad")) -> Path:
    """The files of a `train` checkpoint as far as the checks read them (state.json, priors in model.safetensors)."""
    from safetensors.numpy import save_file

    step = root / "gen" / "checkpoints" / "step_0000002"
    step.mkdir(parents=True)
    (root / "svd").mkdir()
    (step / "state.json").write_text(json.dumps({"step": 2, "model": "tiny",
                                                 "records": {"svd": {"file": str(root / "svd")}}}))
    save_file({f"priors.{e}": np.zeros((1, 256), np.float32) for e in emotions} |
              {"unet.w": np.zeros(2, np.float32)}, str(step / "model.safetensors"))
    (step.parent / "latest").write_text(step.name)
    return root / "gen"


def _embedder_run(root: Path) -> Path:
    step = root / "emb" / "checkpoints" / "step_0000003"
    step.mkdir(parents=True)
    (step / "state.json").write_text(json.dumps({"step": 3, "kind": "emotion-embedder", "records": {}}))
    (step / "model.safetensors").write_bytes(b"x")
    (step.parent / "latest").write_text(step.name)
    (root / "emb" / "embedder.json").write_text("{}")
    return root / "emb"


def test_checkpoint_kinds_are_identified_from_their_files(tmp_path):
    gen = _generator_checkpoint(tmp_path)
    emb = _embedder_run(tmp_path)
    step = gen / "checkpoints" / "step_0000002"
    assert ck.identify_checkpoint(step).name == ck.GENERATOR_CHECKPOINT
    assert ck.identify_checkpoint(gen).name == ck.GENERATOR_RUN
    assert ck.identify_checkpoint(emb).name == ck.EMBEDDER_RUN
    assert ck.identify_checkpoint(emb / "checkpoints" / "step_0000003").name == ck.EMBEDDER_CHECKPOINT
    clf = tmp_path / "own.safetensors"
    clf.write_bytes(b"x")
    clf.with_suffix(".json").write_text(json.dumps({"labels": ["happy"]}))
    assert ck.identify_checkpoint(clf).name == ck.EMOTION_CLASSIFIER
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "train_config.yaml").write_text("steps: 1\n")
    assert ck.identify_checkpoint(fresh).name == ck.RUN_WITHOUT_CHECKPOINT
    assert ck.identify_checkpoint(tmp_path / "svd") is None
    assert ck.generator_checkpoint(gen, command="sample") == step
    with pytest.raises(ck.CheckpointKindError, match="this is an emotion-embedder run .* sample needs a generator"):
        ck.generator_checkpoint(emb, command="sample")
    with pytest.raises(ck.CheckpointKindError, match="written no checkpoint yet"):
        ck.generator_checkpoint(fresh, command="sample")
    with pytest.raises(ck.CheckpointKindError, match="no such file"):
        ck.generator_checkpoint(tmp_path / "nothing", command="sample")


def test_a_new_kind_extends_the_table(tmp_path, monkeypatch):
    monkeypatch.setattr(ck, "CHECKPOINT_KINDS", list(ck.CHECKPOINT_KINDS))
    release = tmp_path / "release"
    release.mkdir()
    (release / "unet.pth").write_bytes(b"x")
    assert ck.identify_checkpoint(release).name == "release-folder"  # built in: the official release folder
    assert ck.generator_checkpoint(release, command="sample") == release
    other = tmp_path / "other"
    other.mkdir()
    (other / "sonic.pth").write_bytes(b"x")
    ck.register_kind(ck.CheckpointKind("sonic-folder", "a Sonic release folder",
                                       lambda p: (p / "sonic.pth").is_file(), generator_folder=lambda p: p),
                     first=True)
    assert ck.identify_checkpoint(other).name == "sonic-folder"
    assert ck.generator_checkpoint(other, command="sample") == other
    with pytest.raises(ValueError, match="already registered"):
        ck.register_kind(ck.CheckpointKind("release-folder", "x", lambda p: False))


def test_generator_checkpoint_whose_svd_folder_is_gone_is_refused(tmp_path):
    gen = _generator_checkpoint(tmp_path)
    (tmp_path / "svd").rmdir()
    with pytest.raises(ck.CheckpointKindError, match="SVD folder .* no longer exists"):
        ck.check_generator_files(gen / "checkpoints" / "step_0000002")


# a separate interpreter: "before the model loads" means the sampling pipeline (and torch) are never imported
_PROBE = """
import json, sys
from dicetalk_bench.sample import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "pipeline": "dicetalk_bench.model.pipeline" in sys.modules,
                  "torch": "torch" in sys.modules}))
"""


def _sample(tmp_path: Path, *args: str) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.fixture()
def sample_inputs(tmp_path):
    from PIL import Image

    from dicetalk_bench import media

    Image.fromarray(np.full((48, 40, 3), 128, np.uint8)).save(tmp_path / "face.png")
    media.write_audio(tmp_path / "speech.wav", np.zeros(16000, np.float32), 16000)
    return ["--image", str(tmp_path / "face.png"), "--audio", str(tmp_path / "speech.wav"), "--face-box",
            "8,8,32,40", "--out", str(tmp_path / "out.mp4")]


@pytest.mark.parametrize("case, message", [
    ("joyful", "not one of the 8 MEAD emotions (angry, contempt, disgusted, fear, happy, neutral, sad, surprised)"),
    ("angry", "stores priors for happy, sad"),
    ("embedder", "this is an emotion-embedder run"),
    ("face-box", "expected four numbers"),
    ("whisper", "--whisper 'random:x': expected random:SEED with an integer seed"),
])
def test_sample_refuses_bad_arguments_before_the_model_loads(tmp_path, sample_inputs, case, message):
    gen = _generator_checkpoint(tmp_path)
    checkpoint = _embedder_run(tmp_path) if case == "embedder" else gen
    emotion = {"joyful": "joyful", "angry": "angry"}.get(case, "happy")
    args = ["--checkpoint", str(checkpoint), "--emotion", emotion, *sample_inputs]
    if case == "face-box":
        args[args.index("--face-box") + 1] = "1,2,3"
    if case == "whisper":
        args += ["--whisper", "random:x"]
    result, err = _sample(tmp_path, *args)
    assert result == {"code": 1, "pipeline": False, "torch": False}, err
    assert message in err and "Traceback" not in err and not (tmp_path / "out.mp4").exists()


def test_sample_without_face_box_needs_the_detector_weights(tmp_path, sample_inputs, monkeypatch):
    from dicetalk_bench import weights

    monkeypatch.setenv("DICETALK_BENCH_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv(weights.env_var_for("blazeface-short"), raising=False)
    args = sample_inputs[:4] + sample_inputs[6:]  # without --face-box
    result, err = _sample(tmp_path, "--checkpoint", str(_generator_checkpoint(tmp_path)), "--emotion", "happy",
                          *args)
    assert result["code"] == 1 and not result["torch"]
    assert "blazeface-short" in err and "fetch blazeface-short" in err and "--face-box" in err


def test_sample_refuses_an_unknown_box_source_before_the_model_loads(tmp_path, sample_inputs):
    args = sample_inputs[:4] + sample_inputs[6:]  # without --face-box: the provider would be used
    result, err = _sample(tmp_path, "--checkpoint", str(_generator_checkpoint(tmp_path)), "--emotion", "happy",
                          "--box-source", "yolo", *args)
    assert result == {"code": 1, "pipeline": False, "torch": False}, err
    assert "--box-source: face box source 'yolo' is not registered; known: blazeface" in err


# ---------------------------------------------------------------------------------------------------- train
@pytest.fixture()
def no_weights(tmp_path, monkeypatch):
    from dicetalk_bench import weights

    monkeypatch.setenv("DICETALK_BENCH_WEIGHTS_DIR", str(tmp_path / "empty-weights"))
    for key in weights.REGISTRY:
        monkeypatch.delenv(weights.env_var_for(key), raising=False)


@pytest.fixture()
def manifest_only(tmp_path) -> Path:
    root = tmp_path / "processed"
    root.mkdir()
    (root / "clips.parquet").write_bytes(b"PAR1")  # the checks only look for the file
    return root


def _no_model(monkeypatch):
    from dicetalk_bench.model import train_loop

    def fail(*args, **kwargs):
        raise AssertionError("a model was built before the checks")

    monkeypatch.setattr(train_loop, "setup", fail)
    monkeypatch.setattr(train_loop, "check_memory", fail)


def test_train_without_priors_dir_fails_cleanly_before_any_model(tmp_path, manifest_only, no_weights, monkeypatch,
                                                                 capsys):
    from dicetalk_bench.train import main

    _no_model(monkeypatch)
    out = tmp_path / "run"
    assert main([f"data_root={manifest_only}", f"out_dir={out}", "svd=random:0", "emotion_source=class-mean"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: weights 'dicetalk-priors'") and "set priors_dir" in err
    assert "Traceback" not in err and not out.exists()
    # the default (per-clip emotions) needs the embedder's output instead
    assert main([f"data_root={manifest_only}", f"out_dir={out}", "svd=random:0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "embedder_dir" in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("override, message", [
    ("priors_dir={tmp}/nope", "not a folder"),
    ("data_root={tmp}/nothing", "no clips.parquet"),
    ("svd=random:x", "random:SEED"),
    ("svd={tmp}/no-svd", "weights 'svd-xt'"),
    ("model=huge", "unknown model size 'huge'"),
    ("init_official=true", "weights 'dicetalk-unet'"),
])
def test_train_refuses_each_missing_input_without_a_folder(tmp_path, manifest_only, no_weights, monkeypatch, capsys,
                                                           override, message):
    from dicetalk_bench.train import main
    from dicetalk_bench.weights import write_random_priors

    _no_model(monkeypatch)
    priors = tmp_path / "priors"
    write_random_priors(priors, 0)
    out = tmp_path / "run"
    argv = [f"data_root={manifest_only}", f"priors_dir={priors}", f"out_dir={out}", "svd=random:0",
            "emotion_source=class-mean", "model=tiny", override.format(tmp=tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not out.exists()


def test_train_embedder_without_preprocessing_output(tmp_path, capsys):
    from dicetalk_bench.train_embedder import main

    out = tmp_path / "emb"
    assert main([f"data_root={tmp_path / 'none'}", f"out_dir={out}"]) == 1
    err = capsys.readouterr().err
    assert "no clips.parquet" in err and "dicetalk_bench.preprocess" in err and not out.exists()


def test_verbose_shows_the_traceback_of_a_setup_error(tmp_path, capsys):
    from dicetalk_bench.train import main

    assert main(["-v", f"data_root={tmp_path / 'none'}", f"out_dir={tmp_path / 'run'}"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "SetupError" in err and err.rstrip().endswith(
        "(set data_root in the config or as data_root=DIR)")
