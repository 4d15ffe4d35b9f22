"""The preprocess CLI resolves every weights file before any work: a missing one stops the run once, at the start,
naming the fix, with nothing written; a random Whisper encoder is used only when asked and then recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dicetalk_bench import weights
from dicetalk_bench.preprocess import main
from dicetalk_bench.preprocessing import orchestration, pipeline

FAST = ["--set", "crop.size=64", "--set", "faces.stride=3", "--set", "faces.model=short", "--set", "preset=ultrafast",
        "--no-progress"]


@pytest.fixture()
def real_blazeface() -> Path:
    """The real short-range BlazeFace file (fetched before the tests), resolved before ``no_weights`` hides it."""
    return weights.resolve("blazeface-short").path


@pytest.fixture()
def no_weights(real_blazeface: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty weights folder and no per-key variables: nothing resolves but what a test puts back."""
    empty = tmp_path / "empty_weights"
    empty.mkdir()
    monkeypatch.setenv("DICETALK_BENCH_WEIGHTS_DIR", str(empty))
    monkeypatch.setenv("TORCH_HOME", str(empty))
    for key in weights.REGISTRY:
        monkeypatch.delenv(weights.env_var_for(key), raising=False)
    return empty


@pytest.fixture()
def clusters(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records every local Dask cluster the pipeline tries to start (and refuses to start one)."""
    started: list[int] = []

    def fake_cluster(workers: int, **_: object) -> None:
        started.append(workers)
        raise AssertionError("a Dask cluster was started")

    monkeypatch.setattr(orchestration, "local_cluster", fake_cluster)  # where execute looks it up
    return started


def test_missing_blazeface_fails_once_before_any_worker(mini_mead: Path, whisper_random: Path, no_weights: Path,
                                                        clusters: list[int], tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    rc = main(["--dataset", "mead", "--root", str(mini_mead), "--out", str(out), "--workers", "2",
               "--whisper", "random:0", *FAST])
    err = capsys.readouterr().err
    assert rc == 2
    assert clusters == [] and not out.exists()
    assert err.count("'blazeface-short'") == 1, err  # once for the run, not once per clip
    assert "python -m dicetalk_bench.weights fetch blazeface-short" in err
    assert "nothing was processed or written" in err


def test_auto_detector_needs_both_blazeface_models(no_weights: Path) -> None:
    cfg = pipeline.with_overrides(pipeline.PreprocessConfig(), audio=dict(whisper="random:0"))
    assert pipeline.detector_keys(cfg.faces) == ("blazeface-short", "blazeface-full")
    with pytest.raises(pipeline.PipelineError, match="2 weights problem") as info:
        pipeline.preflight_weights(cfg)
    assert "fetch blazeface-short" in str(info.value) and "fetch blazeface-full" in str(info.value)
    missing = pipeline.with_overrides(cfg, faces=dict(detector_path=str(no_weights / "nope.tflite")))
    assert pipeline.detector_keys(missing.faces) == ()
    with pytest.raises(pipeline.PipelineError, match="faces.detector_path=.*nope.tflite: no such file"):
        pipeline.preflight_weights(missing)


def test_without_whisper_weights_or_random_the_run_stops(mini_mead: Path, real_blazeface: Path, no_weights: Path,
                                                         clusters: list[int], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv(weights.env_var_for("blazeface-short"), str(real_blazeface))  # only Whisper is missing
    out = tmp_path / "out"
    rc = main(["--dataset", "mead", "--root", str(mini_mead), "--out", str(out), "--workers", "2", *FAST])
    err = capsys.readouterr().err
    assert rc == 2 and clusters == [] and not out.exists()
    assert "1 weights problem" in err
    assert "'whisper-tiny'" in err and "huggingface-cli download openai/whisper-tiny" in err
    assert "--whisper random:SEED" in err and "--whisper DIR" in err
    # the dry run checks the same thing first
    assert main(["--dataset", "mead", "--root", str(mini_mead), "--out", str(out), "--dry-run", *FAST]) == 2
    assert not out.exists()


def test_random_seed_must_be_an_integer(mini_mead: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert main(["--dataset", "mead", "--root", str(mini_mead), "--out", str(out), "--whisper", "random:x", *FAST]) == 2
    assert "expected random:SEED with an integer seed" in capsys.readouterr().err and not out.exists()


def test_root_is_required(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--dataset", "mead", "--out", str(tmp_path / "out")])
    assert info.value.code == 2 and "--root" in capsys.readouterr().err
    assert main(["--dataset", "mead", "--root", str(tmp_path / "absent"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "is not a folder" in err and "python -m dicetalk_bench.demo_data --out DIR" in err
    assert not (tmp_path / "out").exists()


def test_random_whisper_is_said_and_recorded_in_every_output(mini_mead: Path, whisper_random: Path, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        rc = main(["--dataset", "mead", "--root", str(mini_mead), "--out", str(out), "--workers", "0",
                   "--speakers", "W011", "--whisper", "random:0", *FAST])
    assert rc == 0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "random whisper-tiny" in r.getMessage()]
    assert len(warned) == 1 and "random:0" in warned[0] and "uncalibrated" in warned[0]

    def is_random(rec: dict) -> bool:
        return rec["key"] == "whisper-tiny" and rec["file"] == "random:0" and rec["calibrated"] is False \
            and rec["random_seed"] == 0

    manifest = pq.read_schema(out / "clips.parquet").metadata[b"dicetalk_bench"]
    assert is_random(json.loads(manifest)["whisper"])
    ipc = pa.ipc.open_file(pa.memory_map(str(out / "features.arrow"), "r")).schema.metadata[b"dicetalk_bench"]
    assert is_random(json.loads(ipc)["whisper"])
    audio_files = sorted((out / "audio").rglob("*.parquet"))
    assert audio_files
    for f in audio_files:
        assert is_random(json.loads(pq.read_schema(f).metadata[b"dicetalk_bench"])["whisper"])
    assert "whisper: random:0" in (out / "preprocess_config.yaml").read_text()
