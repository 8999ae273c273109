"""The deterministic policy head shared by DrQ-v2/DrM and the TD3 family (TD3, TD3+BC, A2PR)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from robo_rl.nets.encoder import FeatureTrunk
from robo_rl.nets.mlp import MLP


class DeterministicActor(nn.Module):
    """features -> trunk -> MLP -> tanh: the mean action mu(s) in [-1, 1]."""

    def __init__(self, trunk: FeatureTrunk, action_dim: int, hidden_dims: Sequence[int],
                 activation: str = "relu", layer_norm: bool = False):
        super().__init__()
        self.trunk = trunk
        self.net = MLP(trunk.out_dim, hidden_dims, action_dim, activation, layer_norm,
                       output_activation="tanh")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(self.trunk(features))
