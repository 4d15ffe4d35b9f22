"""SyncNet parity: our ``SyncNet`` against a layer-by-layer forward written here with torch.nn.functional over the
state dict, from the layer list of joonson/syncnet_python ``SyncNetModel.S(num_layers_in_fc_layers=1024)``
(Sequential indices, kernels, strides, paddings, pools), with random weights in the ``syncnet_v2.model`` format."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from dicetalk_bench import weights
from dicetalk_bench.metrics.syncnet import load_syncnet

BN_EPS = 1e-5  # nn.BatchNorm default, as in syncnet_python's S


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def _bn(x: torch.Tensor, sd: dict, name: str) -> torch.Tensor:
    return F.batch_norm(x, sd[f"{name}.running_mean"], sd[f"{name}.running_var"], sd[f"{name}.weight"],
                        sd[f"{name}.bias"], training=False, eps=BN_EPS)


def _conv_bn_relu(x: torch.Tensor, sd: dict, net: str, i: int, conv, **kw) -> torch.Tensor:
    x = conv(x, sd[f"{net}.{i}.weight"], sd[f"{net}.{i}.bias"], **kw)
    return F.relu(_bn(x, sd, f"{net}.{i + 1}"))


def _fc(x: torch.Tensor, sd: dict, net: str) -> torch.Tensor:
    """Linear(512, 512) -> BatchNorm1d -> ReLU -> Linear(512, 1024) (indices 0, 1, 3)."""
    x = F.relu(_bn(F.linear(x, sd[f"{net}.0.weight"], sd[f"{net}.0.bias"]), sd, f"{net}.1"))
    return F.linear(x, sd[f"{net}.3.weight"], sd[f"{net}.3.bias"])


def reference_audio(x: torch.Tensor, sd: dict) -> torch.Tensor:
    """(N, 1, 13, 20) MFCC windows -> (N, 1024)."""
    n = "netcnnaud"
    x = _conv_bn_relu(x, sd, n, 0, F.conv2d, padding=1)                 # 13 x 20; MaxPool 1x1 (index 3) is identity
    x = _conv_bn_relu(x, sd, n, 4, F.conv2d, padding=1)
    x = F.max_pool2d(x, 3, stride=(1, 2))                               # 11 x 9
    x = _conv_bn_relu(x, sd, n, 8, F.conv2d, padding=1)
    x = _conv_bn_relu(x, sd, n, 11, F.conv2d, padding=1)
    x = _conv_bn_relu(x, sd, n, 14, F.conv2d, padding=1)
    x = F.max_pool2d(x, 3, stride=2)                                    # 5 x 4
    x = _conv_bn_relu(x, sd, n, 18, F.conv2d)                           # (5, 4) kernel -> 1 x 1
    return _fc(x.flatten(1), sd, "netfcaud")


def reference_lip(x: torch.Tensor, sd: dict) -> torch.Tensor:
    """(N, 3, 5, 224, 224) BGR 0-255 windows -> (N, 1024)."""
    n = "netcnnlip"
    x = _conv_bn_relu(x, sd, n, 0, F.conv3d, stride=(1, 2, 2))          # T 5 -> 1, 224 -> 109
    x = F.max_pool3d(x, (1, 3, 3), stride=(1, 2, 2))                    # 54
    x = _conv_bn_relu(x, sd, n, 4, F.conv3d, stride=(1, 2, 2), padding=(0, 1, 1))  # 26
    x = F.max_pool3d(x, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))  # 13
    x = _conv_bn_relu(x, sd, n, 8, F.conv3d, padding=(0, 1, 1))
    x = _conv_bn_relu(x, sd, n, 11, F.conv3d, padding=(0, 1, 1))
    x = _conv_bn_relu(x, sd, n, 14, F.conv3d, padding=(0, 1, 1))
    x = F.max_pool3d(x, (1, 3, 3), stride=(1, 2, 2))                    # 6
    x = _conv_bn_relu(x, sd, n, 18, F.conv3d)                           # (1, 6, 6) kernel -> 1 x 1
    return _fc(x.flatten(1), sd, "netfclip")


@pytest.fixture(scope="module")
def model_and_state(tmp_path_factory):
    path = weights.make_random("syncnet", tmp_path_factory.mktemp("syncnet"), seed=0)
    model, _ = load_syncnet(path, allow_unverified=True)
    return model, torch.load(path, map_location="cpu", weights_only=True)


def test_audio_stream_equals_layer_by_layer_reference(model_and_state):
    model, sd = model_and_state
    # int16-scale MFCC magnitudes, as SyncNet sees them
    x = torch.randn(3, 1, 13, 20, generator=torch.Generator().manual_seed(0)) * 10
    with torch.inference_mode():
        ours, ref = model.forward_aud(x), reference_audio(x, sd)
    assert ours.shape == ref.shape == (3, 1024)
    assert _rel(ours, ref) < 1e-5


def test_lip_stream_and_whole_clip_path_equal_layer_by_layer_reference(model_and_state):
    model, sd = model_and_state
    clip = torch.rand(1, 3, 6, 224, 224, generator=torch.Generator().manual_seed(1)) * 255  # two 5-frame windows
    windows = torch.cat([clip[:, :, t:t + 5] for t in range(2)])
    with torch.inference_mode():
        ref = reference_lip(windows, sd)
        ours = model.forward_lip(windows)
        whole = model.lip_clip_embeddings(clip)
    assert ours.shape == whole.shape == ref.shape == (2, 1024)
    assert _rel(ours, ref) < 1e-5
    assert _rel(whole, ref) < 1e-5
