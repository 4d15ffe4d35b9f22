"""I3D for FVD: parameter layout of i3d_pretrained_400.pt, registry loading, shapes, batch independence,
the TorchScript backend."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dicetalk_bench import weights
from dicetalk_bench.metrics import i3d

DATA = Path(__file__).resolve().parents[1] / "data"
SIZE = i3d.MIN_SIZE  # smallest size the 7x7 average pool allows: keeps the CPU test cheap


@pytest.fixture(scope="module")
def random_file(tmp_path_factory) -> Path:
    return weights.make_random("i3d-400", tmp_path_factory.mktemp("w"), seed=0)


@pytest.fixture(scope="module")
def model_and_record(random_file):
    torch.manual_seed(0)
    return i3d.load_i3d("i3d-400", random_file, allow_unverified=True)


def test_names_and_shapes_equal_reference_list(random_file):
    lines = (DATA / "i3d_InceptionI3d_400.tsv").read_text().splitlines()
    assert lines[0].startswith("# source:")
    ref = sorted(tuple(line.split("\t")) for line in lines[1:] if line.strip())
    assert len(ref) == 344
    module = sorted((k, str(tuple(v.shape))) for k, v in i3d.InceptionI3d().state_dict().items())
    assert module == ref
    state = torch.load(random_file, map_location="cpu", weights_only=True)
    assert sorted((k, str(tuple(v.shape))) for k, v in state.items()) == ref


def test_parameter_count_matches_reference():
    # reference_keys/README: 12,711,881 numbers in the state dict of InceptionI3d(400)
    assert sum(v.numel() for v in i3d.InceptionI3d().state_dict().values()) == 12_711_881


def test_loaded_through_registry_uncalibrated(model_and_record, random_file):
    model, record = model_and_record
    assert not model.training
    assert record["key"] == "i3d-400" and record["backend"] == "i3d-400"
    assert record["calibrated"] is False and record["file"] == str(random_file)
    with pytest.raises(weights.WeightsHashMismatchError):
        i3d.load_i3d("i3d-400", random_file)  # unpinned file without allow_unverified


def test_incomplete_state_dict_is_refused(tmp_path, random_file):
    state = torch.load(random_file, weights_only=True)
    state.pop("logits.conv3d.bias")
    bad = tmp_path / "i3d_pretrained_400.pt"
    torch.save(state, bad)
    with pytest.raises(ValueError, match="1 missing keys"):
        i3d.load_i3d("i3d-400", bad, allow_unverified=True)


def test_logits_are_averaged_over_time(model_and_record):
    model, _ = model_and_record
    x = torch.rand(1, 3, 17, SIZE, SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.inference_mode():
        per_t = model.logits_over_time(x)
        out = model(x)
    assert per_t.shape == (1, 400, i3d.temporal_output_length(17)) == (1, 400, 2)
    torch.testing.assert_close(out, per_t.mean(dim=2))
    assert torch.isfinite(out).all()


def test_features_independent_of_batch_size(model_and_record):
    model, _ = model_and_record
    x = torch.rand(7, 3, i3d.MIN_FRAMES, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.inference_mode():
        batched = model(x)
        singles = torch.cat([model(x[i:i + 1]) for i in (0, 6)])
    assert batched.shape == (7, 400)
    torch.testing.assert_close(singles, batched[[0, 6]], rtol=1e-4, atol=1e-4)
    assert (batched[0] - batched[6]).abs().max() > 0


def test_clip_shape_errors():
    with pytest.raises(ValueError, match="at least 9 frames"):
        i3d.check_clip_shape((1, 3, 8, 224, 224))
    with pytest.raises(ValueError, match="at least 193x193"):
        i3d.check_clip_shape((1, 3, 16, 112, 112))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        i3d.check_clip_shape((1, 16, 3, 224, 224))
    with pytest.raises(ValueError, match="unknown I3D backend"):
        i3d.load_i3d("c3d")


class _TinyScripted(torch.nn.Module):
    """Stands in for StyleGAN-V's i3d_torchscript.pt: same call signature, (B, 400) features."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(3, 400)

    def forward(self, x: torch.Tensor, rescale: bool = True, resize: bool = True,
                return_features: bool = False) -> torch.Tensor:
        if rescale or resize or not return_features:
            raise RuntimeError("FVD protocol must call rescale=False, resize=False, return_features=True")
        return self.proj(x.mean(dim=(2, 3, 4)))


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_torchscript_backend_through_registry(tmp_path):
    torch.manual_seed(0)
    scripted = torch.jit.script(_TinyScripted())
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.save(scripted, str(path))
    with pytest.raises(weights.WeightsHashMismatchError):
        i3d.load_i3d("i3d-torchscript", path)  # no public hash: refused unless allowed
    model, record = i3d.load_i3d("i3d-torchscript", path, allow_unverified=True)
    assert record["backend"] == "i3d-torchscript" and record["calibrated"] is False
    x = torch.rand(2, 3, 16, 224, 224)
    out = model(x)
    assert out.shape == (2, 400)
    torch.testing.assert_close(out, scripted(x, rescale=False, resize=False, return_features=True))


@pytest.mark.parametrize("eps", [1e-3, 1e-5, 0.25])
def test_bn_eps_reaches_every_batchnorm_layer(eps):
    model = i3d.InceptionI3d(bn_eps=eps)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    # one BatchNorm per Unit3D except the logits unit: 3 in the stem + 6 in each of the 9 Inception modules
    assert len(bns) == 3 + 6 * 9 == 57
    assert all(isinstance(m, torch.nn.BatchNorm3d) and m.eps == eps for m in bns)
    assert model.bn_eps == eps
    assert i3d.DEFAULT_BN_EPS == 1e-5 and all(m.eps == 1e-5 for m in i3d.InceptionI3d().modules()
                                                if isinstance(m, torch.nn.BatchNorm3d))


def test_bn_eps_closed_form_on_one_unit():
    # identity 1x1x1 convolution, running mean 0, running var v, gamma 1, beta 0: y = relu(x / sqrt(v + eps))
    v = torch.tensor([1e-4, 1e-2, 1.0])
    x = torch.tensor([-1.0, 0.5, 2.0]).view(1, 3, 1, 1, 1).expand(1, 3, 1, 2, 2).contiguous()
    outputs = []
    for eps in (1e-3, 1e-5):
        unit = i3d.Unit3D(3, 3, bn_eps=eps).eval()
        with torch.no_grad():
            unit.conv3d.weight.copy_(torch.eye(3).view(3, 3, 1, 1, 1))
            unit.bn.running_var.copy_(v)
        expected = torch.relu(x / torch.sqrt(v + eps).view(1, 3, 1, 1, 1))
        torch.testing.assert_close(unit(x), expected)
        outputs.append(float(unit(x).detach()[0, 1, 0, 0, 0]))
    # the smaller the running variance, the more the two epsilons differ: 1.0488x at var 1e-2
    assert outputs[1] / outputs[0] == pytest.approx(((1e-2 + 1e-3) / (1e-2 + 1e-5)) ** 0.5, rel=1e-5)


def test_load_i3d_builds_the_requested_eps(random_file):
    model, record = i3d.load_i3d("i3d-400", random_file, allow_unverified=True, bn_eps=1e-3)
    assert model.bn_eps == 1e-3 and model.Mixed_5c.b2b.bn.eps == 1e-3 and record["backend"] == "i3d-400"
    with pytest.raises(ValueError, match="BatchNorm eps"):
        i3d.load_i3d("i3d-400", random_file, allow_unverified=True, bn_eps=0.0)
