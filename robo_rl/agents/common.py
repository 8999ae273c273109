"""Pieces of a learner step shared by every learner and component (SAC's reward critic and the
Lagrangian cost critic use ``critic_step``), and optimiser helpers for in-place resets."""
from __future__ import annotations

from typing import Iterable, TypeVar

import torch

T = TypeVar("T")


def or_default(value: T | None, default: T) -> T:
    """``value`` unless it is None (config fields like ``critic_lr: null`` -> the shared lr)."""
    return default if value is None else value


def make_adam(params: Iterable[torch.Tensor], lr: float) -> torch.optim.Adam:
    """The optimiser every robo_rl learner uses. fused=True: one kernel per step for all tensors
    (CPU and CUDA), ~5% of a 256x256 SAC update saved against foreach on CPU; the state dict is
    the same as foreach's."""
    return torch.optim.Adam(list(params), lr=lr, fused=True)


def reset_optimizer_state_(optimizer: torch.optim.Optimizer,
                           params: Iterable[torch.Tensor]) -> int:
    """Forget the optimiser's per-parameter state (Adam: step, exp_avg, exp_avg_sq) for those of
    ``params`` it holds, in place, so its next step treats them as new (Adam's bias correction
    restarts); other parameters keep theirs. Param groups and learning rates are unchanged.
    Returns how many of ``params`` it held."""
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    count = 0
    for param in params:
        if id(param) in held:
            optimizer.state.pop(param, None)
            count += 1
    return count


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
