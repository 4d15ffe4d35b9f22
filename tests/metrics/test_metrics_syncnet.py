"""SyncNet S: parameter names/shapes vs syncnet_python's, strict loading through the weights registry,
whole-clip lip embeddings vs per-window ones."""

from pathlib import Path

import pytest
import torch

from dicetalk_bench import weights
from dicetalk_bench.metrics.syncnet import SyncNet, load_syncnet, write_random_weights

KEYS_TSV = Path(__file__).resolve().parents[1] / "data" / "syncnet_S.tsv"


def _reference_keys() -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in KEYS_TSV.read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        name, shape = line.split("\t")
        rows.append((name, tuple(int(x) for x in shape.strip("()").split(",") if x.strip())))
    return rows


def test_state_dict_names_and_shapes_equal_syncnet_python():
    ref = _reference_keys()
    assert len(ref) == 102
    ours = [(k, tuple(v.shape)) for k, v in SyncNet().state_dict().items()]
    assert sorted(ours) == sorted(ref)
    # reference_keys/README.md counts every state-dict element (BN statistics and the 14 scalar counters included)
    assert sum(v.numel() for v in SyncNet().state_dict().values()) == 13_640_270


def test_random_weights_load_strictly_through_the_registry(tmp_path, monkeypatch):
    path = weights.make_random("syncnet", tmp_path, seed=3)
    assert path.name == "syncnet_v2.model"
    # a plain state dict, loadable with weights_only=True as LatentSync and syncnet-python 0.2.3 do
    state = torch.load(path, map_location="cpu", weights_only=True)
    SyncNet().load_state_dict(state, strict=True)
    monkeypatch.setenv("DICETALK_BENCH_SYNCNET_WEIGHTS", str(path))
    model, record = load_syncnet(allow_unverified=True)
    assert record["calibrated"] is False and record["sha256"] == weights.file_sha256(path)
    assert not model.training
    torch.testing.assert_close(model.netcnnlip[0].weight, state["netcnnlip.0.weight"])
    # same seed -> same weights; different seed -> different
    write_random_weights(tmp_path / "again.model", seed=3)
    write_random_weights(tmp_path / "other.model", seed=4)
    again = torch.load(tmp_path / "again.model", weights_only=True)
    other = torch.load(tmp_path / "other.model", weights_only=True)
    assert torch.equal(again["netfcaud.3.weight"], state["netfcaud.3.weight"])
    assert not torch.equal(other["netfcaud.3.weight"], state["netfcaud.3.weight"])


def test_unverified_random_weights_are_refused_without_opt_in(tmp_path):
    path = weights.make_random("syncnet", tmp_path, seed=0)
    with pytest.raises(weights.WeightsHashMismatchError):
        load_syncnet(path)


def test_a_wrong_state_dict_is_refused_with_the_file_name(tmp_path):
    bad = tmp_path / "syncnet_v2.model"
    state = SyncNet().state_dict()
    state.pop("netfclip.3.bias")
    torch.save(state, bad)
    with pytest.raises(weights.WeightsError, match="syncnet_v2.model"):
        load_syncnet(bad, allow_unverified=True)


def test_output_shapes_and_whole_clip_equals_per_window(tmp_path):
    path = weights.make_random("syncnet", tmp_path, seed=1)
    model, _ = load_syncnet(path, allow_unverified=True)
    gen = torch.Generator().manual_seed(0)
    clip = torch.rand((1, 3, 7, 224, 224), generator=gen) * 255
    with torch.no_grad():
        per_window = model.forward_lip(torch.cat([clip[:, :, t:t + 5] for t in range(3)], 0))
        whole = model.lip_clip_embeddings(clip)
        aud = model.forward_aud(torch.randn((2, 1, 13, 20), generator=gen) * 10)
    assert per_window.shape == whole.shape == (3, 1024) and aud.shape == (2, 1024)
    torch.testing.assert_close(whole, per_window, rtol=1e-5, atol=1e-5 * per_window.abs().max().item())
    assert per_window.std() > 0 and aud.std() > 0
    with pytest.raises(ValueError, match="clip"):
        model.lip_clip_embeddings(clip[:, :, :4])
