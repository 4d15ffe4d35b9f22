"""PSNR / SSIM closed forms and LPIPS through the weights registry (random AlexNet backbone)."""

import numpy as np
import pytest
import torch

from dicetalk_bench import weights
from dicetalk_bench.metrics.pixel import (PSNR_CAP_DB, _backbone_state, load_lpips, psnr, ssim, video_psnr,
                                          video_ssim)


def _img(seed, shape=(32, 40, 3)):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_psnr_closed_forms():
    a = _img(0)
    assert psnr(a, a) == PSNR_CAP_DB == 100.0  # identical frames: the cap, not inf
    assert psnr(a, a, cap_db=float("inf")) == float("inf")
    b = a.astype(np.int16)
    b = np.where(b < 128, b + 5, b - 5).astype(np.uint8)  # every pixel off by exactly 5: MSE = 25
    assert psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2 / 25), rel=1e-12)
    assert video_psnr(np.stack([a, a]), np.stack([b, b])) == pytest.approx(psnr(a, b))


def test_psnr_cap_applies_per_frame_only_above_100_db():
    a = _img(3, (256, 256, 3))
    b = a.copy()
    b[0, 0, 0] ^= 1  # one channel of one pixel off by 1: MSE = 1 / (3 * 256 * 256)
    uncapped = 10 * np.log10(255 ** 2 * 3 * 256 * 256)
    assert uncapped == pytest.approx(101.07, abs=0.01)
    assert psnr(a, b, cap_db=float("inf")) == pytest.approx(uncapped, rel=1e-12)
    assert psnr(a, b) == 100.0
    c = np.where(a < 128, a + 1, a - 1).astype(np.uint8)  # MSE 1: 48.13 dB, far below the cap
    video = video_psnr(np.stack([a, a]), np.stack([a, c]))  # one identical frame, one not
    assert video == pytest.approx((100.0 + 10 * np.log10(255 ** 2)) / 2, rel=1e-12)


def test_ssim_closed_forms_and_modes():
    a = _img(1, (48, 48, 3))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, a, "skimage-default") == pytest.approx(1.0)
    # a constant image against itself shifted in brightness: luminance term only, closed form
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    x, y = np.full((32, 32, 3), 100, np.uint8), np.full((32, 32, 3), 150, np.uint8)
    assert ssim(x, y) == pytest.approx((2 * 100 * 150 + c1) / (100 ** 2 + 150 ** 2 + c1) * (c2 / c2), rel=1e-9)
    noisy = np.clip(a.astype(int) + np.random.default_rng(2).integers(-30, 30, a.shape), 0, 255).astype(np.uint8)
    g, d = ssim(a, noisy), ssim(a, noisy, "skimage-default")
    assert 0 < g < 1 and 0 < d < 1 and g != d
    assert video_ssim(np.stack([a, noisy]), np.stack([a, noisy])) == pytest.approx(1.0)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="differs from reference shape"):
        psnr(_img(0), _img(0, (16, 16, 3)))
    with pytest.raises(ValueError, match="uint8"):
        ssim(_img(0).astype(np.float32), _img(0).astype(np.float32))
    with pytest.raises(ValueError, match="ssim mode"):
        ssim(_img(0), _img(0), "box")


@pytest.fixture(scope="module")
def lpips_random(tmp_path_factory):
    path = weights.make_random("lpips-alex", tmp_path_factory.mktemp("alex"), seed=0)
    metric, record = load_lpips(path, allow_unverified=True)
    return metric, record, path


def test_lpips_loads_the_registry_backbone_into_lpips_slices(lpips_random):
    metric, record, path = lpips_random
    assert record["calibrated"] is False and record["key"] == "lpips-alex"
    state = torch.load(path, weights_only=True)
    mapped = _backbone_state(state)
    assert sorted(mapped) == sorted(k for k in metric.model.state_dict() if k.startswith("net."))
    torch.testing.assert_close(getattr(metric.model.net.slice5, "10").weight, state["features.10.weight"])
    # the linear heads are the lpips wheel's, not random
    assert metric.model.lin0.model[1].weight.abs().sum() > 0


def test_lpips_values(lpips_random):
    metric, _, _ = lpips_random
    a = np.stack([_img(3, (64, 64, 3)), _img(4, (64, 64, 3))])
    b = np.stack([_img(5, (64, 64, 3)), _img(6, (64, 64, 3))])
    np.testing.assert_allclose(metric(a, a), 0.0, atol=1e-7)
    d = metric(a, b)
    assert d.shape == (2,) and (d > 0).all()
    # batch independence: one at a time gives the same values
    np.testing.assert_allclose(metric(a, b, batch_size=1), d, rtol=1e-5)
    assert metric.video(a, b) == pytest.approx(d.mean())


def test_lpips_rejects_a_wrong_backbone(tmp_path):
    bad = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 11, 11)}, bad)
    with pytest.raises(weights.WeightsError, match="alexnet-owt-7be5be79.pth"):
        load_lpips(bad, allow_unverified=True)
