"""Frozen-dataclass configuration: YAML loading, CLI overrides, hashing and saving."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from dicetalk_bench.config import (
    ConfigError,
    apply_overrides,
    config_hash,
    from_dict,
    load_config,
    save_config,
    to_dict,
)


@dataclasses.dataclass(frozen=True)
class CropConfig:
    size: int = 512
    expand_ratio: float = 0.5
    align_roll: bool = False


@dataclasses.dataclass(frozen=True)
class StageConfig:
    name: str = "demo"
    fps: float = 25.0
    views: tuple[str, ...] = ("front",)
    mode: Literal["fast", "parity"] = "fast"
    out: Path | None = None
    crop: CropConfig = dataclasses.field(default_factory=CropConfig)


def test_defaults_round_trip_through_dict() -> None:
    cfg = StageConfig()
    assert from_dict(StageConfig, to_dict(cfg)) == cfg


def test_yaml_then_overrides_take_precedence(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("fps: 30\ncrop:\n  size: 256\nviews: [front, left_30]\n")
    cfg = load_config(StageConfig, path, ["crop.size=128", "mode=parity", "out=/tmp/x"])
    assert cfg.fps == 30.0 and isinstance(cfg.fps, float)
    assert cfg.crop == CropConfig(size=128, expand_ratio=0.5)
    assert cfg.views == ("front", "left_30")
    assert cfg.mode == "parity"
    assert cfg.out == Path("/tmp/x")


def test_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("crop:\n  sise: 256\n")
    with pytest.raises(ConfigError, match=r"sise"):
        load_config(StageConfig, path)


def test_bad_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="mode"):
        load_config(StageConfig, None, ["mode=slow"])
    with pytest.raises(ConfigError, match="crop.size"):
        load_config(StageConfig, None, ["crop.size=big"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["crop.size"])


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(StageConfig, tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(StageConfig, bad)


def test_hash_is_stable_and_sensitive() -> None:
    a, b = StageConfig(), StageConfig()
    assert config_hash(a) == config_hash(b)
    assert config_hash(a) != config_hash(dataclasses.replace(a, crop=CropConfig(size=256)))


def test_save_config_writes_resolved_yaml(tmp_path: Path) -> None:
    cfg = StageConfig(crop=CropConfig(size=64))
    path = save_config(cfg, tmp_path / "out")
    assert path.name == "config.yaml"
    assert load_config(StageConfig, path) == cfg
    assert not list((tmp_path / "out").glob("*.tmp"))
