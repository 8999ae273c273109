"""Q-function heads shared by every actor-critic learner (SAC/RLPD, DrQ-v2, DrM, TD3+BC, A2PR)
and by components that add a critic of their own (the Lagrangian cost critic)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from robo_rl.nets.encoder import FeatureTrunk
from robo_rl.nets.mlp import EnsembleMLP


class EnsembleCritic(nn.Module):
    """Q_1..Q_N(s, a) as one EnsembleMLP over [trunk(features), action]; returns N x B.

    ``weight_init`` initialises the ensemble; the caller initialises the trunk
    (``init_weights_(critic.trunk, scheme)``), keeping the order in which learners draw their
    initial weights. ``reset_parameters_(critic, scheme)`` re-draws both in place."""

    def __init__(self, trunk: FeatureTrunk, action_dim: int, num_members: int,
                 hidden_dims: Sequence[int], activation: str = "relu", layer_norm: bool = False,
                 weight_init: str = "default"):
        super().__init__()
        self.trunk = trunk
        self.q = EnsembleMLP(num_members, trunk.out_dim + action_dim, hidden_dims, 1,
                             activation, layer_norm, weight_init)

    def forward(self, features: torch.Tensor, action: torch.Tensor,
                members: torch.Tensor | None = None) -> torch.Tensor:
        return self.q(torch.cat([self.trunk(features), action], dim=-1), members).squeeze(-1)
