"""Weight initialisation helpers shared by every learner.

Two schemes are offered everywhere a network is built:
- ``"default"``: PyTorch's own ``nn.Linear`` / ``nn.Conv2d`` default (weights and biases
  U(-1/sqrt(fan_in), 1/sqrt(fan_in))), the choice of SAC/RLPD reference code;
- ``"orthogonal"``: orthogonal weights and zero biases, the choice of DrQ-v2/DrM, with their
  gains: 1 for Linear layers, sqrt(2) (ReLU's) for convolutions (drqv2 ``utils.weight_init``).
"""
from __future__ import annotations

import math

import torch
from torch import nn

WEIGHT_INITS = ("default", "orthogonal")
# Orthogonal gains as DrQ-v2/DrM set them: convolutions get ReLU's (calculate_gain("relu")),
# Linear layers (plain and ensemble) nn.init.orthogonal_'s default 1.
CONV_GAIN = math.sqrt(2.0)
LINEAR_GAIN = 1.0


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
def orthogonal_init_(module: nn.Module) -> nn.Module:
    """Orthogonal weights, zero bias for every Linear/Conv2d/EnsembleLinear inside ``module``
    (DrQ-v2's ``weight_init``: gain 1 for Linear, sqrt(2) for Conv2d). Returns the module."""
    from robo_rl.nets.mlp import EnsembleLinear  # local import: mlp imports this module

    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.orthogonal_(layer.weight, CONV_GAIN if isinstance(layer, nn.Conv2d) else LINEAR_GAIN)
            if layer.bias is not None:
                layer.bias.zero_()
        elif isinstance(layer, EnsembleLinear):
            layer.reset_parameters("orthogonal")
    return module


def init_weights_(module: nn.Module, scheme: str) -> nn.Module:
    """Apply ``scheme`` (see WEIGHT_INITS) to ``module``; "default" keeps PyTorch's init."""
    if check_weight_init(scheme) == "orthogonal":
        orthogonal_init_(module)
    return module



@torch.no_grad()
def reset_parameters_(module: nn.Module, scheme: str,
                      generator: torch.Generator | None = None) -> nn.Module:
    """Re-draw every parameter of ``module`` in place from its construction-time distribution
    under ``scheme``: Linear/Conv2d/EnsembleLinear as nn.Linear's default (U(+-1/sqrt(fan_in))
    for weight and bias) or orthogonal with zero bias, LayerNorm/EnsembleLayerNorm affine to
    (1, 0). Parameters keep their identity, so optimisers and hooks still point at them.
    ``generator``: the learner's RNG (None: torch's global one)."""
    orthogonal = check_weight_init(scheme) == "orthogonal"
    for layer in module.modules():
        _reset_layer_(layer, orthogonal, generator)
    return module


def _reset_layer_(layer: nn.Module, orthogonal: bool,
                  generator: torch.Generator | None) -> None:
    """Re-draw the parameters ``layer`` owns itself (not its submodules')."""
    from robo_rl.nets.mlp import EnsembleLayerNorm, EnsembleLinear  # mlp imports this module

    if isinstance(layer, (nn.Linear, nn.Conv2d, EnsembleLinear)):
        if isinstance(layer, EnsembleLinear):
            fan_in, weights = layer.in_features, [w.T for w in layer.weight]  # out x in views
        else:  # Conv2d fan-in: in_channels / groups * kernel area
            fan_in, weights = layer.weight[0].numel(), [layer.weight]
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        for weight in weights:
            if orthogonal:
                gain = CONV_GAIN if isinstance(layer, nn.Conv2d) else LINEAR_GAIN
                nn.init.orthogonal_(weight, gain, generator=generator)
            else:
                weight.uniform_(-bound, bound, generator=generator)
        if layer.bias is not None:
            if orthogonal:
                layer.bias.zero_()
            else:
                layer.bias.uniform_(-bound, bound, generator=generator)
    elif isinstance(layer, (nn.LayerNorm, EnsembleLayerNorm)):
        if getattr(layer, "weight", None) is not None:
            layer.weight.fill_(1.0)
        if getattr(layer, "bias", None) is not None:
            layer.bias.zero_()


@torch.no_grad()
def shrink_perturb_(module: nn.Module, alpha: float, scheme: str,
                    layer_types: tuple[type[nn.Module], ...] | None = None,
                    generator: torch.Generator | None = None) -> list[nn.Parameter]:
    """theta <- alpha * theta + (1 - alpha) * theta_fresh for the parameters of every layer of
    ``layer_types`` inside ``module`` (default: Linear and EnsembleLinear, DrM's choice: conv and
    LayerNorm parameters stay), theta_fresh drawn as ``reset_parameters_`` does under ``scheme``.
    alpha = 1 keeps the weights, 0 re-initialises them. Returns the parameters it changed (reset
    their optimiser state with ``robo_rl.agents.common.reset_optimizer_state_``)."""
    from robo_rl.nets.mlp import EnsembleLinear

    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"shrink-and-perturb alpha must be in [0, 1], got {alpha}")
    orthogonal = check_weight_init(scheme) == "orthogonal"
    layer_types = layer_types if layer_types is not None else (nn.Linear, EnsembleLinear)
    changed: list[nn.Parameter] = []
    for layer in module.modules():
        if not isinstance(layer, layer_types):
            continue
        params = list(layer.parameters(recurse=False))
        old = [p.detach().clone() for p in params]
        _reset_layer_(layer, orthogonal, generator)
        for param, previous in zip(params, old):
            param.lerp_(previous, alpha)  # fresh + alpha (old - fresh) = alpha old + (1-alpha) fresh
        changed += params
    return changed
