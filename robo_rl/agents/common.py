"""Pieces of a learner step shared by SAC's reward critic and the Lagrangian cost critic."""
from __future__ import annotations

from typing import TypeVar

import torch

T = TypeVar("T")


def or_default(value: T | None, default: T) -> T:
    """``value`` unless it is None (config fields like ``critic_lr: null`` -> the shared lr)."""
    return default if value is None else value


@torch.no_grad()
def polyak_update_(target_params: list[torch.Tensor], online_params: list[torch.Tensor],
                   tau: float) -> None:
    """target <- (1 - tau) target + tau online, as one fused call over all tensors."""
    torch._foreach_lerp_(target_params, online_params, tau)


def critic_step(q: torch.Tensor, target: torch.Tensor, optimizer: torch.optim.Optimizer,
                target_params: list[torch.Tensor], online_params: list[torch.Tensor],
                tau: float) -> torch.Tensor:
    """One ensemble critic step: loss = sum_i mean_B (q_i - y)^2 on N x B ``q`` and a B
    ``target``; an optimiser step; then the Polyak step of the target critics.
    Returns the detached loss."""
    loss = (q - target).pow(2).mean(dim=1).sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    polyak_update_(target_params, online_params, tau)
    return loss.detach()
