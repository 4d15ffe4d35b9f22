"""RIFE HDv3: the release's parameter names and shapes, strict loading of its file format through the weights
registry, the backward warp on a real photo, the blend with zero flow, and frame doubling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dicetalk_bench.model.rife import IFNet, backward_warp, interpolate_frames, load_rife, write_random_rife

KEYS = Path(__file__).parents[1] / "data" / "official_keys_rife_hdv3_ifnet.tsv"


def _official_keys() -> dict[str, tuple[int, ...]]:
    rows = [line.split("\t") for line in KEYS.read_text().splitlines() if line and not line.startswith("#")]
    return {name: tuple(int(v) for v in shape.strip("()").split(",") if v.strip()) for name, shape in rows}


def test_parameter_names_and_shapes_equal_the_release_file():
    official = _official_keys()
    ours = {f"module.{k}": tuple(v.shape) for k, v in IFNet().state_dict().items()}
    assert len(official) == 160
    assert ours == official
    assert sum(int(np.prod(s)) for s in official.values()) == 3_038_015


def test_module_prefixed_file_loads_strictly_through_the_registry(tmp_path):
    path = tmp_path / "RIFE" / "flownet.pkl"
    path.parent.mkdir()
    write_random_rife(path, seed=3)
    stored = torch.load(path, weights_only=True)
    assert all(k.startswith("module.") for k in stored)
    net, record = load_rife(path.parent, allow_unverified=True)  # a folder holding flownet.pkl, as the release
    for k, v in net.state_dict().items():
        assert torch.equal(v, stored[f"module.{k}"]), k
    assert record["key"] == "rife-hdv3" and record["calibrated"] is False
    from dicetalk_bench.weights import WeightsError

    with pytest.raises(WeightsError):  # unpinned release file: refused unless the user accepts it
        load_rife(path)
    stored.pop("module.block2.conv2.2.bias")
    torch.save(stored, tmp_path / "broken.pkl")
    with pytest.raises(ValueError, match="broken.pkl.*not the RIFE HDv3"):
        load_rife(tmp_path / "broken.pkl", allow_unverified=True)


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """The demo's source photo (dicetalk_bench.demo_data.sources: scikit-image's astronaut), (1, 3, 128, 128)."""
    from PIL import Image

    from dicetalk_bench.demo_data.sources import astronaut_asset

    img = np.asarray(Image.open(astronaut_asset().path).convert("RGB"))[::4, ::4].astype(np.float32) / 255.0
    return torch.from_numpy(img).permute(2, 0, 1)[None].contiguous()


def test_backward_warp_shifts_a_photo_by_a_known_flow(photo):
    h, w = photo.shape[-2:]
    flow = torch.zeros(1, 2, h, w)
    flow[:, 0], flow[:, 1] = 3.0, -2.0  # output (y, x) = input (y - 2, x + 3)
    out = backward_warp(photo, flow)
    # float32 grid arithmetic leaves sample points ~1e-5 px off the pixel centres: 1e-4 is far below one 8-bit
    # grey level (0.004)
    torch.testing.assert_close(out[..., 2:, : w - 3], photo[..., : h - 2, 3:], atol=1e-4, rtol=0)
    # a half-pixel flow lands between two pixels: bilinear = their mean (the interpolation error of a shift)
    flow[:, 0], flow[:, 1] = 2.5, 0.0
    half = backward_warp(photo, flow)
    expected = 0.5 * (photo[..., :, 2:w - 1] + photo[..., :, 3:w])
    torch.testing.assert_close(half[..., :, : w - 3], expected, atol=1e-4, rtol=0)
    # outside the image the border is repeated
    torch.testing.assert_close(out[..., :2, :], out[..., 2:3, :].expand_as(out[..., :2, :]))


def test_zero_flow_and_zero_mask_blend_the_two_frames_equally(photo):
    torch.manual_seed(0)
    net = IFNet().eval()
    with torch.no_grad():
        for block in (net.block0, net.block1, net.block2):
            for head in (block.conv1, block.conv2):  # the flow and mask updates are 0: flow 0, sigmoid(0) = 1/2
                head[2].weight.zero_()
                head[2].bias.zero_()
        other = photo.flip(-1)
        mid = net(photo, other)
    # the zero-flow warp is grid_sample on its own pixel centres: exact up to float32 grid rounding (~1e-5)
    torch.testing.assert_close(mid, (photo + other) / 2, atol=1e-4, rtol=0)


def test_interpolation_doubles_the_frame_rate_keeping_the_originals():
    torch.manual_seed(0)
    net = IFNet().eval()
    frames = torch.rand(4, 3, 40, 24)  # not multiples of 16: padded for the network, cropped back
    out = interpolate_frames(net, frames, batch=2)
    assert out.shape == (7, 3, 40, 24)
    assert torch.equal(out[0::2], frames)
    assert out[1::2].min() >= 0 and out[1::2].max() <= 1
    with torch.no_grad():
        padded = torch.nn.functional.pad(frames, (0, 8, 0, 8), mode="replicate")
        torch.testing.assert_close(out[3], net(padded[1:2], padded[2:3])[0, :, :40, :24].clamp(0, 1))
    assert torch.equal(interpolate_frames(net, frames[:1]), frames[:1])
