"""Where a method's generated test clips go, and the sampling settings that enter every clip's key."""

from __future__ import annotations

import pytest

from dicetalk_bench.evaluation.config import EvalConfig, EvaluateError
from dicetalk_bench.evaluation.generation import generated_dir, sample_settings


def test_generated_folder_holding_another_datasets_clips_is_refused(tmp_path):
    out = tmp_path / "o"
    assert generated_dir(out, "mead", "dice") == out / "generated" / "dice"
    (out / "generated" / "dice" / "hdtf").mkdir(parents=True)
    with pytest.raises(EvaluateError, match="already holds the hdtf clips of method 'dice'"):
        generated_dir(out, "mead", "dice")
    assert generated_dir(out, "mead", "dice", check=False) == out / "generated" / "dice"
    assert generated_dir(out, "hdtf", "dice") == out / "generated" / "dice"


def test_the_old_doubled_layout_is_used_where_it_exists(tmp_path):
    old = tmp_path / "generated" / "mead" / "dice" / "mead"
    old.mkdir(parents=True)
    assert generated_dir(tmp_path, "mead", "dice") == old.parent
    assert generated_dir(tmp_path, "hdtf", "dice") == tmp_path / "generated" / "dice"


def test_method_names_become_safe_folder_names(tmp_path):
    folder = generated_dir(tmp_path, "mead", "A/B")
    assert folder.parent == tmp_path / "generated" and "/" not in folder.name


def test_sample_settings_are_sorted_pairs_and_leave_out_an_unset_window_batch():
    cfg = EvalConfig(method="m", dataset="mead", metrics=("psnr",), out="o", sample_steps=7,
                     weights={"rife-hdv3": "/w/rife"}, frame_rate="release")
    settings = sample_settings(cfg)
    assert [k for k, _ in settings] == sorted(k for k, _ in settings)
    assert dict(settings) == {"steps": 7, "frame_rate": "release", "rife": "/w/rife", "allow_unverified": False}
    cfg = EvalConfig(method="m", dataset="mead", metrics=("psnr",), out="o", window_batch=2)
    assert dict(sample_settings(cfg))["window_batch"] == 2
