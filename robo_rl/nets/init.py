"""Weight initialisation helpers shared by every learner.

Two schemes are offered everywhere a network is built:
- ``"default"``: PyTorch's own ``nn.Linear`` / ``nn.Conv2d`` default (weights and biases
  U(-1/sqrt(fan_in), 1/sqrt(fan_in))), the choice of SAC/RLPD reference code;
- ``"orthogonal"``: orthogonal weights (gain sqrt(2) before ReLU) and zero biases, the
  choice of DrQ-v2/DrM.
"""
from __future__ import annotations

import math

import torch
from torch import nn

WEIGHT_INITS = ("default", "orthogonal")
# Gain for orthogonal init of layers followed by ReLU (torch.nn.init.calculate_gain("relu")).
RELU_GAIN = math.sqrt(2.0)


def check_weight_init(name: str) -> str:
    if name not in WEIGHT_INITS:
        raise ValueError(f"unknown weight init {name!r}: use one of {WEIGHT_INITS}")
    return name


@torch.no_grad()
def uniform_fan_in_(tensor: torch.Tensor, fan_in: int) -> torch.Tensor:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): the distribution nn.Linear's default init gives its
    weight (kaiming_uniform with a=sqrt(5)) and its bias."""
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return tensor.uniform_(-bound, bound)


@torch.no_grad()
def orthogonal_init_(module: nn.Module, gain: float = RELU_GAIN) -> nn.Module:
    """Orthogonal weights, zero bias for every Linear/Conv2d/EnsembleLinear inside ``module``
    (DrQ-v2's ``weight_init``). Returns the module for chaining."""
    from robo_rl.nets.mlp import EnsembleLinear  # local import: mlp imports this module

    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.orthogonal_(layer.weight, gain)
            if layer.bias is not None:
                layer.bias.zero_()
        elif isinstance(layer, EnsembleLinear):
            layer.reset_parameters("orthogonal", gain)
    return module


def init_weights_(module: nn.Module, scheme: str, gain: float = RELU_GAIN) -> nn.Module:
    """Apply ``scheme`` (see WEIGHT_INITS) to ``module``; "default" keeps PyTorch's init."""
    if check_weight_init(scheme) == "orthogonal":
        orthogonal_init_(module, gain)
    return module
