"""Shared pieces of the random-weights builders (randomised BatchNorm statistics and convolutions) and the
``random:SEED`` weights specs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from dicetalk_bench.weights.random_weights import (randomise_batchnorm_statistics_, randomise_conv_bn_,
                                                   random_spec_seed)


def _net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 64, 3), nn.BatchNorm2d(64), nn.ReLU(), nn.Conv1d(64, 32, 1),
                         nn.BatchNorm1d(32, affine=False), nn.InstanceNorm1d(32),  # tracks no statistics
                         nn.Linear(32, 4))


def test_running_statistics_are_drawn_in_their_ranges_and_change_eval_outputs():
    net = _net().eval()
    x = torch.randn(2, 3, 8, 8)
    before = net[:2](x)
    out = randomise_batchnorm_statistics_(net, torch.Generator().manual_seed(0))
    assert out is net
    for bn in (net[1], net[4]):
        mean, var = bn.running_mean, bn.running_var
        assert 0.02 < float(mean.std()) < 0.2 and abs(float(mean.mean())) < 0.1
        assert float(var.min()) >= 0.5 and float(var.max()) <= 1.5 and float(var.std()) > 0.1
    assert not torch.allclose(net[:2](x), before)
    assert net[5].running_mean is None  # untracked statistics are left alone


def test_same_generator_seed_gives_the_same_statistics_and_the_global_generator_is_untouched():
    a, b = _net(), _net()
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    randomise_batchnorm_statistics_(a, torch.Generator().manual_seed(7))
    randomise_batchnorm_statistics_(b, torch.Generator().manual_seed(7))
    assert torch.equal(torch.rand(1), expected_next)
    assert torch.equal(a[1].running_var, b[1].running_var) and torch.equal(a[4].running_mean, b[4].running_mean)
    c = randomise_batchnorm_statistics_(_net(), torch.Generator().manual_seed(8))
    assert not torch.equal(a[1].running_var, c[1].running_var)


def test_conv_weights_are_kaiming_normal_and_batchnorm_affine_near_identity():
    net = randomise_conv_bn_(_net(), torch.Generator().manual_seed(0)).requires_grad_(False)
    conv = net[0].weight  # fan_in 3 * 3 * 3 = 27: std sqrt(2 / 27)
    assert abs(float(conv.std()) - (2 / 27) ** 0.5) < 0.03
    bn = net[1]
    assert float(bn.weight.min()) >= 0.8 and float(bn.weight.max()) <= 1.2 and float(bn.weight.std()) > 0.05
    assert 0.05 < float(bn.bias.std()) < 0.15
    assert float(bn.running_var.min()) >= 0.5 and float(bn.running_var.max()) <= 1.5
    assert float(net[6].weight.abs().max()) <= 1 / 32 ** 0.5  # Linear keeps torch's U(-1/sqrt(fan_in), ...)


def test_global_generator_is_used_without_one():
    torch.manual_seed(5)
    a = randomise_conv_bn_(_net())
    torch.manual_seed(5)
    b = randomise_conv_bn_(_net())
    assert torch.equal(a[0].weight, b[0].weight)  # _net() itself draws from the same seeded stream
    assert torch.equal(a[1].running_mean, b[1].running_mean)


@pytest.mark.parametrize("spec, seed", [("random:0", 0), ("random:42", 42), ("random: 7", 7), (None, None),
                                        ("/data/whisper-tiny", None), ("randomness", None), (Path("random:3"), None)])
def test_random_spec_gives_its_seed_and_anything_else_none(spec, seed):
    assert random_spec_seed(spec) == seed


@pytest.mark.parametrize("spec", ["random:abc", "random:", "random:-1", "random:1.5"])
def test_random_spec_without_an_integer_seed_names_the_option(spec):
    with pytest.raises(ValueError, match=r"^--whisper 'random:.*': expected random:SEED with an integer seed"):
        random_spec_seed(spec, option="--whisper")
