"""Random FAN / S3FD builders write state dicts that face-alignment's own modules load strictly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dicetalk_bench.preprocessing.landmarks import try_fan, write_random_fan, write_random_s3fd


def test_random_fan_and_s3fd_load_into_face_alignment_modules(tmp_path: Path) -> None:
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    write_random_fan(tmp_path / "2DFAN4-11f355bf06.pth.tar", seed=1)
    write_random_s3fd(tmp_path / "s3fd-619a316812.pth", seed=1)
    fan = FAN(4)
    fan.load_state_dict(torch.load(tmp_path / "2DFAN4-11f355bf06.pth.tar", weights_only=True), strict=True)
    det = s3fd()
    det.load_state_dict(torch.load(tmp_path / "s3fd-619a316812.pth", weights_only=True), strict=True)
    # same tensors as written (a real round trip, not only matching names)
    ref = torch.load(tmp_path / "2DFAN4-11f355bf06.pth.tar", weights_only=True)
    assert all(torch.equal(v, fan.state_dict()[k]) for k, v in ref.items())


def test_fan_is_optional_when_weights_are_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DICETALK_BENCH_WEIGHTS_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.delenv("DICETALK_BENCH_FAN_2D_WEIGHTS", raising=False)
    assert try_fan() is None
