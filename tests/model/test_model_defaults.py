"""Training defaults are the real network and weights: svd-xt from the registry (stop with the download command when
absent), the paper-size model; a random SVD only when asked, then warned about and recorded as uncalibrated."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dicetalk_bench import weights
from dicetalk_bench.model.train_loop import TrainConfig, _resolve_svd


def test_defaults_are_the_paper_model_on_the_registry_svd() -> None:
    cfg = TrainConfig()
    assert cfg.model == "paper" and cfg.svd is None


def test_missing_svd_xt_stops_with_the_download_and_the_smoke_option(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DICETALK_BENCH_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.delenv(weights.env_var_for("svd-xt"), raising=False)
    with pytest.raises(FileNotFoundError) as info:
        _resolve_svd(TrainConfig(out_dir=tmp_path / "run"))
    text = str(info.value)
    assert "'svd-xt'" in text and "huggingface-cli download stabilityai/stable-video-diffusion-img2vid-xt" in text
    assert "svd=random:SEED model=tiny" in text
    assert not (tmp_path / "run").exists()
    with pytest.raises(FileNotFoundError) as info:  # an explicit folder that is not there: no smoke hint
        _resolve_svd(TrainConfig(svd=str(tmp_path / "nope"), out_dir=tmp_path / "run"))
    assert "random:SEED" not in str(info.value)


def test_random_svd_only_when_asked_and_then_warned_and_recorded(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="random:SEED with an integer seed"):
        _resolve_svd(TrainConfig(svd="random:x", out_dir=tmp_path / "run"))
    with caplog.at_level(logging.WARNING):
        folder, record = _resolve_svd(TrainConfig(model="tiny", svd="random:0", out_dir=tmp_path / "run"))
    assert (folder / "model_index.json").is_file()
    assert record["calibrated"] is False and record["random_seed"] == 0 and record["key"] == "svd-xt"
    assert any("svd=random:0" in r.getMessage() and "RANDOM" in r.getMessage() for r in caplog.records)
