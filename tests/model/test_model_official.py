"""Release checkpoints load through dicetalk_bench.weights; emotion priors load safely; crafted pickles are refused."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from dicetalk_bench import weights
from dicetalk_bench.model import official, svd  # noqa: F401  (svd registers the svd-xt random builder)
from dicetalk_bench.model.config import TINY
from dicetalk_bench.model.network import DiceTalkNetwork
from dicetalk_bench.model.priors import (PRIOR_EMOTIONS, PriorFormatError, load_prior, load_prior_dict,
                                         load_priors, save_prior, save_priors)

from optional_resources import require_official_priors


def write_release_format_priors(folder: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Eight priors written the way the release wrote them, independently of save_prior: ``np.save`` of a 0-d object
    array holding ``{'mu': (1, 256) float32}``, one ``<emotion>.npy`` per MEAD emotion. Returns the arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    mus = {}
    for name in PRIOR_EMOTIONS:
        mus[name] = (0.86 * rng.standard_normal((1, 256))).astype(np.float32)
        holder = np.empty((), dtype=object)
        holder[()] = {"mu": mus[name]}
        np.save(folder / f"{name}.npy", holder, allow_pickle=True)
    return mus


@pytest.fixture()
def release_priors(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    folder = tmp_path / "emo"
    return folder, write_release_format_priors(folder)


@pytest.fixture(scope="module")
def random_release(tmp_path_factory) -> dict[str, Path]:
    """Tiny random release files written by the registry's builders, through weights.make_random."""
    out = tmp_path_factory.mktemp("release")
    return {key: weights.make_random(key, out / key, seed=3) for key in official.COMPONENTS}


def test_random_release_files_load_strictly_and_equal_their_contents(random_release):
    net, records = official.load_official_network(TINY, random_release, allow_unverified=True)
    for key, (attr, _, _) in official.COMPONENTS.items():
        saved = torch.load(random_release[key], weights_only=True)
        ours = getattr(net, attr).state_dict()
        assert set(saved) == set(ours)
        for name, value in saved.items():
            assert torch.equal(ours[name], value), (key, name)
        assert records[key]["calibrated"] is False and len(records[key]["sha256"]) == 64
    x = net(torch.randn(1, 2, 8, 8, 8), torch.tensor([0.5]), torch.randn(1, 1, 32), torch.tensor([[12.5, 8, 16]]),
            torch.randn(1, 2, 10, 5, 384), torch.randn(1, 2, 256), torch.ones(1, 2, 3, 64, 64))
    assert torch.isfinite(x.unet.sample).all()


def test_unverified_release_file_is_refused_without_flag(random_release):
    with pytest.raises(weights.WeightsError, match="allow_unverified"):
        official.load_component("dicetalk-pose-guider", DiceTalkNetwork(TINY).pose_guider,
                                random_release["dicetalk-pose-guider"])


def test_wrong_component_file_names_the_file_and_keys(random_release):
    net = DiceTalkNetwork(TINY)
    with pytest.raises(ValueError, match=r"audio_linear\.pth.*16 missing key.*blocks\.0\.bias.*unexpected key.*proj1"):
        official.load_component("dicetalk-pose-guider", net.pose_guider, random_release["dicetalk-audio-linear"],
                                allow_unverified=True)


def test_shape_mismatch_is_reported(random_release, tmp_path):
    state = torch.load(random_release["dicetalk-audio-linear"], weights_only=True)
    state["proj2.weight"] = torch.zeros(3, 3)
    bad = tmp_path / "audio_linear.pth"
    torch.save(state, bad)
    with pytest.raises(ValueError, match=r"shape mismatch: proj2\.weight \(3, 3\)"):
        official.load_component("dicetalk-audio-linear", DiceTalkNetwork(TINY).audio_proj, bad,
                                allow_unverified=True)


def test_emo_model_without_classifier_loads(random_release, tmp_path):
    """Upstream loads emo_model.pth with strict=False: the classifier may be absent from the file."""
    state = torch.load(random_release["dicetalk-emo-model"], weights_only=True)
    stripped = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    path = tmp_path / "emo_model.pth"
    torch.save(stripped, path)
    emo = DiceTalkNetwork(TINY).emo_model
    before = emo.classifier.fc1.weight.clone()
    official.load_component("dicetalk-emo-model", emo, path, allow_unverified=True)
    assert torch.equal(emo.codebook.codebook.weight, state["codebook.codebook.weight"])
    assert torch.equal(emo.classifier.fc1.weight, before)
    del stripped["codebook.fc.weight"]
    torch.save(stripped, path)
    with pytest.raises(ValueError, match=r"codebook\.fc\.weight"):
        official.load_component("dicetalk-emo-model", emo, path, allow_unverified=True)


# ---------------------------------------------------------------------------------------------- emotion priors


def test_release_format_priors_load(release_priors):
    folder, mus = release_priors
    priors = load_priors(folder)
    assert list(priors) == list(PRIOR_EMOTIONS)
    for name, mu in priors.items():
        assert mu.shape == (1, 256) and mu.dtype == np.float32
        np.testing.assert_array_equal(mu, mus[name])
    # the safe loader agrees with numpy's own unpickling of the same file
    np.testing.assert_array_equal(priors["happy"], np.load(folder / "happy.npy", allow_pickle=True).item()["mu"])


def test_eight_released_priors_load():
    """The real release files (CC BY-NC-SA, not in this repository): skipped when absent, run in CI."""
    official = require_official_priors()
    priors = load_priors(official)
    assert list(priors) == list(PRIOR_EMOTIONS)
    for name, mu in priors.items():
        assert mu.shape == (1, 256) and mu.dtype == np.float32 and np.isfinite(mu).all()
    happy = priors["happy"]
    assert abs(float(happy.mean())) < 0.2 and 0.6 < float(happy.std()) < 1.1  # mean ~0, std ~0.86
    # the safe loader agrees with numpy's own (trusted here: these are the known release files)
    ref = np.load(official / "happy.npy", allow_pickle=True).item()["mu"]
    np.testing.assert_array_equal(happy, ref)
    assert len({m.tobytes() for m in priors.values()}) == 8


def test_saved_prior_has_release_structure_and_round_trips(tmp_path, release_priors):
    mu = np.random.default_rng(0).standard_normal((1, 256)).astype(np.float32)
    path = save_prior(tmp_path / "custom.npy", mu)
    np.testing.assert_array_equal(load_prior(path), mu)
    raw = np.load(path, allow_pickle=True)  # our own file: same layout as the release (0-d object array)
    assert raw.shape == () and raw.dtype == object and set(raw.item()) == {"mu"}
    released = np.load(release_priors[0] / "sad.npy", allow_pickle=True)
    assert raw.dtype == released.dtype and raw.shape == released.shape
    folder = save_priors(tmp_path / "saved", {n: mu + i for i, n in enumerate(PRIOR_EMOTIONS)})
    loaded = load_priors(folder)
    np.testing.assert_array_equal(loaded["fear"], mu + 3)


def test_plain_array_prior_is_accepted(tmp_path):
    np.save(tmp_path / "plain.npy", np.ones(256, dtype=np.float64))
    assert load_prior(tmp_path / "plain.npy").shape == (1, 256)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_crafted_prior_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npy"
    np.save(path, np.array({"mu": _Evil(marker)}, dtype=object), allow_pickle=True)
    with pytest.raises(PriorFormatError, match=r"evil\.npy.*(system|not allowed)"):
        load_prior(path)
    assert not marker.exists()
    # a bare pickle behind a valid object-array header
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": ()})
    raw = tmp_path / "raw.npy"
    raw.write_bytes(b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + pickle.dumps(_Evil(marker)))
    with pytest.raises(PriorFormatError, match="raw.npy"):
        load_prior_dict(raw)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload, match",
    [
        ({"sigma": np.zeros((1, 256), np.float32)}, "no 'mu' entry"),
        ({"mu": np.zeros((1, 128), np.float32)}, r"shape \(1, 128\)"),
        ({"mu": np.array(["a"] * 256)}, "not a numeric array"),
        ({"mu": np.full((1, 256), np.nan, np.float32)}, "NaN"),
    ],
)
def test_malformed_priors_are_reported(tmp_path, payload, match):
    path = tmp_path / "bad.npy"
    np.save(path, np.array(payload, dtype=object), allow_pickle=True)
    with pytest.raises(PriorFormatError, match=match):
        load_prior(path)


def test_missing_and_non_npy_priors(tmp_path):
    with pytest.raises(PriorFormatError, match="missing angry.npy"):
        load_priors(tmp_path)
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    with pytest.raises(PriorFormatError, match=r"x\.npy: not a \.npy file"):
        load_prior(tmp_path / "x.npy")


def test_random_svd_folder_through_the_registry(tmp_path):
    from dicetalk_bench.model.svd import load_frozen_encoders
    from dicetalk_bench.model.unet import DiceTalkUNet, add_ip_adapters

    folder = weights.make_random("svd-xt", tmp_path, seed=1)
    assert {p.name for p in folder.iterdir()} >= {"model_index.json", "unet", "vae", "image_encoder", "scheduler"}
    assert weights.resolve("svd-xt", folder, allow_unverified=True).calibrated is False
    enc = load_frozen_encoders(folder)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    assert enc.encode_latents(images).shape == (2, 4, 4, 4)
    assert enc.clip_embed(images).shape == (2, 1, TINY.cross_attention_dim)
    assert enc.decode(torch.zeros(1, 2, 4, 4, 4), chunk=1).shape == (1, 2, 3, 32, 32)
    unet = DiceTalkUNet.from_pretrained(folder / "unet")
    assert add_ip_adapters(unet, TINY) == 8
    with pytest.raises(FileNotFoundError, match="no vae/ subfolder"):
        load_frozen_encoders(tmp_path / "missing")
