"""FID InceptionV3: parameter layout, loading through the weights registry, preprocessing modes, batch independence
(parity with torch-fidelity and pytorch-fid: test_parity_fid.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dicetalk_bench import weights
from dicetalk_bench.metrics import inception

DATA = Path(__file__).resolve().parents[1] / "data"


def _reference_list(name: str) -> list[tuple[str, str]]:
    lines = (DATA / name).read_text().splitlines()
    assert lines[0].startswith("# source:")
    return [tuple(line.split("\t")) for line in lines[1:] if line.strip()]


@pytest.fixture(scope="module")
def random_file(tmp_path_factory) -> Path:
    return weights.make_random("inception-fid", tmp_path_factory.mktemp("w"), seed=0)


@pytest.fixture(scope="module")
def model_and_record(random_file):
    return inception.load_inception(random_file, allow_unverified=True)


def test_random_file_has_reference_names_and_shapes(random_file):
    state = torch.load(random_file, map_location="cpu", weights_only=True)
    ref = _reference_list("inception_torch_fidelity.tsv")
    assert len(ref) == 566
    assert [(k, str(tuple(v.shape))) for k, v in state.items()] == ref


def test_random_weights_depend_on_seed(tmp_path, random_file):
    other = tmp_path / "o.pth"
    inception.write_random_weights(other, seed=1)
    again = tmp_path / "a.pth"
    inception.write_random_weights(again, seed=0)
    a, b, c = (torch.load(p, weights_only=True) for p in (random_file, other, again))
    key = "Mixed_7c.branch_pool.conv.weight"
    assert not torch.equal(a[key], b[key]) and torch.equal(a[key], c[key])


def test_loaded_through_registry_and_reported_uncalibrated(model_and_record, random_file):
    _, record = model_and_record
    assert record["key"] == "inception-fid" and record["calibrated"] is False
    assert record["verified_by"] == "unverified" and record["file"] == str(random_file)
    assert record["sha256"] == weights.file_sha256(random_file)
    assert record["resize_mode"] == "tf1"


def test_registry_refuses_unverified_and_official_location_mismatch(random_file, tmp_path, monkeypatch):
    with pytest.raises(weights.WeightsHashMismatchError):
        inception.load_inception(random_file)  # no allow_unverified
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(random_file.parent))  # official name, wrong hash
    monkeypatch.delenv("DICETALK_BENCH_INCEPTION_FID_WEIGHTS", raising=False)
    with pytest.raises(weights.WeightsHashMismatchError, match="official sha256"):
        inception.load_inception(allow_unverified=True)
    monkeypatch.setenv(weights.WEIGHTS_DIR_ENV, str(tmp_path / "empty"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(weights.WeightsNotFoundError, match="pt_inception-2015-12-05-6726825d.pth"):
        inception.load_inception()


def test_env_var_path_is_used(random_file, monkeypatch):
    monkeypatch.setenv("DICETALK_BENCH_INCEPTION_FID_WEIGHTS", str(random_file))
    _, record = inception.load_inception(allow_unverified=True)
    assert record["file"] == str(random_file)


def test_wrong_state_dict_is_refused(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"fc.weight": torch.zeros(3, 3)}, bad)
    with pytest.raises(ValueError, match="not an FID InceptionV3 state dict"):
        inception.load_inception(bad, allow_unverified=True)


def test_pytorch_fid_mode_is_different_but_finite(random_file):
    model, record = inception.load_inception(random_file, allow_unverified=True, resize_mode="pytorch-fid")
    assert record["resize_mode"] == "pytorch-fid"
    x = torch.randint(0, 256, (1, 3, 40, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    a = model(x)
    model.resize_mode = "tf1"
    b = model(x)
    assert a.shape == b.shape == (1, 2048) and a.dtype == torch.float32
    assert torch.isfinite(a).all() and not torch.allclose(a, b)
    # equality with pytorch-fid's and torch-fidelity's own preprocessing and features: test_parity_fid.py


def test_features_independent_of_batch_size(model_and_record):
    model, _ = model_and_record
    frames = np.random.default_rng(0).integers(0, 256, (7, 24, 32, 3), dtype=np.uint8)
    batched = inception.extract_features(model, frames, batch_size=7)
    single = inception.extract_features(model, frames, batch_size=1)
    np.testing.assert_allclose(batched, single, rtol=1e-4, atol=1e-5)
    assert np.abs(batched - batched[0]).max() > 0  # different frames give different features


def test_input_contract_errors(model_and_record):
    model, _ = model_and_record
    with pytest.raises(TypeError, match="uint8"):
        model(torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.zeros(1, 8, 8, 3, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) uint8"):
        inception.extract_features(model, np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="resize_mode"):
        inception.InceptionFeatures(model.net, "bicubic")
