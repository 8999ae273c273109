"""Multi-layer perceptrons: a plain MLP and an ensemble of N MLPs run as one batched module.

The ensemble keeps every member's weights in one tensor of shape N x in x out and evaluates
all members with a single ``torch.baddbmm`` per layer, so a 10-critic RLPD ensemble costs a
handful of kernel launches instead of a Python loop over critics. ``members=`` evaluates only
a chosen subset (e.g. the 2 of 10 target critics a RLPD backup needs) by indexing the weights.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from robo_rl.nets.init import LINEAR_GAIN, check_weight_init, uniform_fan_in_

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}: use one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MLP(nn.Module):
    """Linear -> [LayerNorm] -> activation, repeated per hidden size, then a Linear output.

    Every activation is its own module instance, so plasticity probes can hook Linear outputs
    (pre-activation, DrM's dormant ratio) and activation outputs (post-ReLU, FAU).
    """

    def __init__(self, in_dim: int, hidden_dims: Sequence[int], out_dim: int,
                 activation: str = "relu", layer_norm: bool = False,
                 output_activation: str | None = None):
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_dim
        for width in hidden_dims:
            layers.append(nn.Linear(previous, width))
            if layer_norm:
                layers.append(nn.LayerNorm(width))
            layers.append(make_activation(activation))
            previous = width
        layers.append(nn.Linear(previous, out_dim))
        if output_activation is not None:
            layers.append(make_activation(output_activation))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class EnsembleLinear(nn.Module):
    """N independent Linear layers as one module: weight N x in x out, bias N x 1 x out.

    Input: N x B x in (one batch per member) or B x in (the same batch for every member).
    Output: N x B x out, or M x B x out when ``members`` (M indices) is given.
    """

    def __init__(self, num_members: int, in_features: int, out_features: int,
                 init: str = "default"):
        super().__init__()
        if num_members < 1:
            raise ValueError(f"EnsembleLinear needs num_members >= 1, got {num_members}")
        self.num_members, self.in_features, self.out_features = num_members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(num_members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(num_members, 1, out_features))
        self.reset_parameters(init)

    @torch.no_grad()
    def reset_parameters(self, init: str = "default", gain: float = LINEAR_GAIN) -> None:
        """"default": each member drawn like nn.Linear(in, out)'s default init;
        "orthogonal": each member's (out x in) matrix orthogonal with ``gain``, zero bias."""
        if check_weight_init(init) == "default":
            uniform_fan_in_(self.weight, self.in_features)
            uniform_fan_in_(self.bias, self.in_features)
        else:
            for member_weight in self.weight:  # init only, not on the forward path
                nn.init.orthogonal_(member_weight.T, gain)
            self.bias.zero_()

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if members is not None:
            weight, bias = weight[members], bias[members]
        if x.dim() == 2:  # shared batch: a stride-0 view, no copy
            x = x.unsqueeze(0).expand(weight.shape[0], -1, -1)
        if x.dim() != 3 or x.shape[0] != weight.shape[0] or x.shape[-1] != self.in_features:
            raise ValueError(
                f"EnsembleLinear expects input ({weight.shape[0]}, B, {self.in_features}) or "
                f"(B, {self.in_features}), got {tuple(x.shape)}")
        return torch.baddbmm(bias, x, weight)

    def extra_repr(self) -> str:
        return f"num_members={self.num_members}, in={self.in_features}, out={self.out_features}"


class EnsembleLayerNorm(nn.Module):
    """LayerNorm over the last dim with separate affine parameters per ensemble member
    (what N separate nn.LayerNorm modules compute)."""

    def __init__(self, num_members: int, dim: int, eps: float = 1e-5):
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(num_members, 1, dim))
        self.bias = nn.Parameter(torch.zeros(num_members, 1, dim))

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if members is not None:
            weight, bias = weight[members], bias[members]
        return torch.addcmul(bias, F.layer_norm(x, (self.dim,), eps=self.eps), weight)


class EnsembleMLP(nn.Module):
    """N MLPs with identical shapes evaluated together (see module docstring).

    ``forward(x, members=None)``: x is N x B x in or B x in (shared); returns N x B x out
    (or M x B x out for ``members``, an index tensor of M member ids).
    """

    def __init__(self, num_members: int, in_dim: int, hidden_dims: Sequence[int], out_dim: int,
                 activation: str = "relu", layer_norm: bool = False, init: str = "default"):
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_dim
        for width in hidden_dims:
            layers.append(EnsembleLinear(num_members, previous, width, init))
            if layer_norm:
                layers.append(EnsembleLayerNorm(num_members, width))
            layers.append(make_activation(activation))
            previous = width
        layers.append(EnsembleLinear(num_members, previous, out_dim, init))
        self.layers = nn.ModuleList(layers)
        self.num_members, self.in_dim, self.out_dim = num_members, in_dim, out_dim

    def forward(self, x: torch.Tensor, members: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            if isinstance(layer, (EnsembleLinear, EnsembleLayerNorm)):
                x = layer(x, members)
            else:
                x = layer(x)
        return x
