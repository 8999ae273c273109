"""TD3+BC (Fujimoto & Gu 2021): TD3 with a behaviour-cloning term and normalised states.

The learner is TD3 (robo_rl/agents/td3.py: critic, target smoothing, policy delay, state
normalisation live there); only the actor loss differs:

    pi = mu(s);  lambda = alpha / mean_B |Q_1(s, pi)|    (no gradient through lambda)
    actor loss = -lambda * mean_B Q_1(s, pi) + mean_{B,A} (pi - a)^2

alpha = 2.5 and state normalisation on, as the paper's D4RL runs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from robo_rl.agents.td3 import TD3Config, TD3Learner


@dataclass
class TD3BCConfig(TD3Config):
    name: str = "td3_bc"
    alpha: float = 2.5                    # weight of the normalised Q term
    normalize_states: bool = True

    def problems(self) -> list[str]:
        return [f"alpha must be >= 0 (got {self.alpha})"] if self.alpha < 0 else []


def normalized_q_term(q: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(-lambda * mean Q, lambda) with lambda = alpha / mean |Q| held constant: the Q term of
    TD3+BC and A2PR, whose scale does not depend on the reward scale."""
    lam = alpha / q.abs().mean().detach()
    return -lam * q.mean(), lam


class TD3BCAgent(TD3Learner):
    def actor_loss(self, batch, obs: torch.Tensor, context: dict):
        pi = self.actor(obs)
        q_term, lam = normalized_q_term(self.q1(obs, pi), self.cfg.alpha)
        bc = (pi - batch.action).pow(2).mean()
        return q_term + bc, {"bc_loss": bc.detach(), "q_term": q_term.detach(), "lambda": lam}
