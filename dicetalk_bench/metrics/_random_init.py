"""Random weights with realistic statistics, shared by the extractors' ``write_random_weights`` builders."""

from __future__ import annotations

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd


def randomise_conv_bn_(model: nn.Module) -> nn.Module:
    """In place, from torch's global generator: Kaiming-normal convolutions; BatchNorm affine terms near identity
    (weight ~ U(0.8, 1.2), bias ~ N(0, 0.1)) and running statistics randomised (mean ~ N(0, 0.1), var ~ U(0.5, 1.5))
    so that they matter in tests. Returns ``model``."""
    for mod in model.modules():
        if isinstance(mod, _ConvNd):
            nn.init.kaiming_normal_(mod.weight, nonlinearity="relu")
        elif isinstance(mod, _BatchNorm):
            nn.init.uniform_(mod.weight, 0.8, 1.2)
            nn.init.normal_(mod.bias, 0.0, 0.1)
            mod.running_mean.normal_(0.0, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    return model
