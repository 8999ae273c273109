"""Lagrangian constraint, a learner component: passivity-aware training (``constraint=energy``).

Constrained problem: max_pi J_r(pi) subject to J_c(pi) <= d, with a per-step cost c (arm tasks:
``info["cost"]``, the energy the impedance controller's non-passive part injects in the step, or
draws from the energy tank when the task has one). Lagrangian SAC solves the saddle point
min_{lambda >= 0} max_pi J_r - lambda (J_c - d). Per learner update, beside the learner's own
steps (through the ``LearnerComponent`` hooks of robo_rl/agents/base.py, so it composes with any
actor-critic learner that calls them - SAC/RLPD now):

    on_critic_minibatch - for each critic minibatch (s, a, r, c, d, s'), a' = the reward
    target's a' ~ pi(.|s'):
        y_c = c + d_c * reduce_i Qbar_c,i(s', a')
        cost critic loss = sum_i mean_B (Q_c,i(s, a) - y_c)^2;  Adam step;  Polyak with the
        learner's tau
    actor_penalty - in the actor step (a~ ~ pi(.|s)), SAC's loss becomes
        actor loss = mean_B(alpha log pi(a~|s) - Q_r(s, a~) + lambda * reduce_i Q_c,i(s, a~))
    after_learner_step - dual ascent, once per learner update:
        J_c_hat = mean_B reduce_i Q_c,i(s, a~)                      (detached)
        lambda  <- max(0, lambda + multiplier_lr * (J_c_hat - budget))

Choices (the paper's exact cost and estimator were not retrievable; these are ours):
  * J_c is estimated by the cost critic on the actor's minibatch: the discounted cost-to-go of
    the current policy averaged over replay states (SAC-Lagrangian, e.g. safety-starter-agents),
    not from recent episode costs, so lambda moves every learner update with no loop coupling.
  * ``budget`` is therefore in the critic's units, a discounted cost-to-go. The replay
    bootstraps time-limit truncations, so spending c per step forever is worth c / (1 - gamma):
    a per-episode energy budget E over T-step episodes is ``budget_from_episode_budget(E, T,
    gamma) = E / (T (1 - gamma))``.
  * d_c is the replay's discount (gamma^n, 0 after a termination) when ``cost_gamma`` is None;
    another cost_gamma needs 1-step returns (the replay discounts n-step costs with gamma).
  * ``q_reduction`` aggregates the cost ensemble: "mean" (default) or "max" (pessimistic: the
    actor then avoids actions any member thinks costly).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import torch
from torch import nn

from robo_rl.agents.base import ActorCriticConfig, Component
from robo_rl.agents.common import critic_step, make_adam, or_default
from robo_rl.config_utils import dataclass_from_dict
from robo_rl.nets import EnsembleCritic, FeatureTrunk, init_weights_

COST_Q_REDUCTIONS = ("mean", "max")


@dataclass
class LagrangianConfig:
    """Every number of the Lagrangian constraint (configs/constraint/energy.yaml mirrors it)."""
    name: str = "energy"
    cost_key: str = "cost"          # info key of the per-step cost the loop stores in the replay
    # Defaults that engage within a few thousand steps (bench/passivity_training.py): a cost
    # critic at the agent's gamma 0.99 is still far below its fixed point after 4000 updates
    # (Polyak 0.005), so lambda stayed 0 with a 2 J/episode budget at gamma 0.99; a ~1 s cost
    # horizon (0.9 at 10 Hz) converges in time. budget 0.2 = 2 J per 100-step episode at 0.9.
    budget: float = 0.2             # d, on the discounted cost-to-go (see budget_from_episode_budget)
    multiplier_lr: float = 1e-3     # dual ascent step on lambda per learner update
    init_multiplier: float = 0.0    # lambda at the start (>= 0)
    cost_gamma: Optional[float] = 0.9   # None -> the replay's discount (the agent's gamma, n-step)
    num_critics: int = 2            # cost critic ensemble size
    hidden_dims: Optional[tuple[int, ...]] = None  # None -> the agent's hidden_dims
    q_reduction: str = "mean"       # "mean" or "max" over the cost ensemble
    critic_lr: Optional[float] = None  # None -> the agent's critic learning rate

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "LagrangianConfig":
        return dataclass_from_dict(cls, values, "constraint", where="constraint")

    def build(self, agent_cfg: ActorCriticConfig, pixel_dim: int, state_dim: int,
              action_dim: int, device="cpu") -> "LagrangianConstraint":
        """The component (ComponentSpec): a learner calls this once its encoder is built."""
        return LagrangianConstraint(self, agent_cfg, pixel_dim, state_dim, action_dim, device)


def check_constraint_config(cfg: LagrangianConfig, agent_cfg: ActorCriticConfig) -> None:
    if cfg.init_multiplier < 0 or cfg.multiplier_lr < 0:
        raise ValueError(f"init_multiplier ({cfg.init_multiplier}) and multiplier_lr "
                         f"({cfg.multiplier_lr}) must be >= 0: lambda is a Lagrange multiplier")
    if cfg.num_critics < 1:
        raise ValueError(f"constraint num_critics must be >= 1, got {cfg.num_critics}")
    if cfg.q_reduction not in COST_Q_REDUCTIONS:
        raise ValueError(f"constraint q_reduction={cfg.q_reduction!r}: use one of {COST_Q_REDUCTIONS}")
    if cfg.cost_gamma is not None:
        if not 0.0 <= cfg.cost_gamma < 1.0:
            raise ValueError(f"cost_gamma must be in [0, 1) or null, got {cfg.cost_gamma}")
        if agent_cfg.n_step != 1:
            raise ValueError(f"cost_gamma={cfg.cost_gamma} needs agent.n_step=1 (the replay "
                             f"discounts n-step costs with agent.gamma); set cost_gamma: null")


def constraint_config(constraint_cfg) -> LagrangianConfig | None:
    """The constraint named by a Hydra ``constraint`` group entry: None for ``name: none``."""
    if constraint_cfg is None:
        return None
    if not isinstance(constraint_cfg, Mapping):
        from omegaconf import OmegaConf  # a DictConfig from Hydra
        constraint_cfg = OmegaConf.to_container(constraint_cfg, resolve=True)
    values = dict(constraint_cfg)
    name = values.get("name")
    if name == "none":
        return None
    if name not in CONSTRAINTS:
        raise ValueError(f"unknown constraint name {name!r}: use one of {['none', *CONSTRAINTS]}")
    return CONSTRAINTS[name].from_dict(values)


def budget_from_episode_budget(episode_budget: float, episode_length: int, gamma: float) -> float:
    """The discounted cost-to-go of spending ``episode_budget`` evenly over ``episode_length``
    steps, forever (the replay bootstraps truncations): (E / T) / (1 - gamma)."""
    if episode_length < 1 or not 0.0 <= gamma < 1.0:
        raise ValueError(f"need episode_length >= 1 and 0 <= gamma < 1, got {episode_length}, {gamma}")
    return episode_budget / episode_length / (1.0 - gamma)


class LagrangianConstraint(Component):
    """Cost critic (an ensemble like the learner's critics, sized by its ActorCriticConfig) +
    target, and the multiplier lambda: a ``LearnerComponent``.

    Hooks: ``on_critic_minibatch`` -> ``update_critic``; ``actor_penalty``;
    ``after_learner_step`` -> ``update_multiplier``. Its learner state-dict entry is
    "constraint" (``name``)."""

    name = "constraint"

    def __init__(self, cfg: LagrangianConfig, agent_cfg: ActorCriticConfig, pixel_dim: int,
                 state_dim: int, action_dim: int, device="cpu"):
        check_constraint_config(cfg, agent_cfg)
        self.cfg = cfg
        self.device = torch.device(device)
        self.tau = agent_cfg.tau
        hidden_dims = cfg.hidden_dims if cfg.hidden_dims is not None else agent_cfg.hidden_dims
        self.critic = EnsembleCritic(
            FeatureTrunk(pixel_dim, state_dim, agent_cfg.encoder.feature_dim), action_dim,
            cfg.num_critics, hidden_dims, agent_cfg.activation, agent_cfg.critic_layer_norm,
            agent_cfg.weight_init)
        init_weights_(self.critic.trunk, agent_cfg.weight_init)
        self.critic.to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())
        lr = or_default(cfg.critic_lr, or_default(agent_cfg.critic_lr, agent_cfg.lr))
        self.optimizer = make_adam(self._critic_params, lr)
        # A device tensor, updated in place: the dual step needs no host sync.
        self.multiplier = torch.tensor(float(cfg.init_multiplier), device=self.device)

    # -- LearnerComponent hooks ---------------------------------------------------------------

    def on_critic_minibatch(self, batch, features, next_features, next_action):
        """The cost critic's step on the learner's minibatch, with the reward target's a'."""
        return self.update_critic(features, batch.action, getattr(batch, "cost", None),
                                  batch.discount, next_features, next_action)

    def after_learner_step(self, cost_estimate):
        """Dual ascent on lambda with the J_c estimate ``actor_penalty`` returned."""
        return self.update_multiplier(cost_estimate)

    def networks(self) -> dict[str, nn.Module]:
        return {"critic": self.critic, "critic_target": self.critic_target}

    def named_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"critic": self.optimizer}

    def target_networks(self) -> dict[str, str]:
        return {"critic": "critic_target"}

    # -- the steps ----------------------------------------------------------------------------

    def reduce(self, q: torch.Tensor) -> torch.Tensor:
        """N x B cost values of the ensemble -> B."""
        return q.mean(dim=0) if self.cfg.q_reduction == "mean" else q.max(dim=0).values

    def cost_discount(self, discount: torch.Tensor) -> torch.Tensor:
        if self.cfg.cost_gamma is None:
            return discount
        # 1-step returns (checked): discount is gamma, or 0 after a termination.
        return (discount > 0).to(discount.dtype) * self.cfg.cost_gamma

    @torch.no_grad()
    def target(self, cost, discount, next_features, next_action) -> torch.Tensor:
        """y_c = c + d_c * reduce_i Qbar_c,i(s', a')."""
        next_q = self.reduce(self.critic_target(next_features, next_action))
        return cost + self.cost_discount(discount) * next_q

    def update_critic(self, features, action, cost, discount, next_features, next_action):
        """One cost critic step on detached features, then its Polyak step."""
        if cost is None:
            raise ValueError("the batch has no cost: constrained training needs a replay built with "
                             "ReplayBuffer(..., track_cost=True) and add(..., cost=info[cost_key])")
        target = self.target(cost, discount, next_features, next_action)
        q = self.critic(features, action)                              # N x B
        loss = critic_step(q, target, self.optimizer, self._target_params, self._critic_params,
                           self.tau)
        return {"cost_loss": loss, "cost_target_mean": target.mean()}

    def actor_penalty(self, features, action):
        """(lambda * reduce_i Q_c,i(s, a) per row, differentiable in ``action``; the detached
        batch mean of reduce_i Q_c,i(s, a), the J_c estimate for ``update_multiplier``)."""
        cost_q = self.reduce(self.critic(features, action))
        return self.multiplier * cost_q, cost_q.detach().mean()

    @torch.no_grad()
    def update_multiplier(self, cost_estimate: torch.Tensor):
        """lambda <- max(0, lambda + multiplier_lr * (J_c_hat - budget))."""
        self.multiplier.add_(self.cfg.multiplier_lr * (cost_estimate - self.cfg.budget)).clamp_(min=0.0)
        return {"lambda": self.multiplier.clone(), "cost_q": cost_estimate}

    def state_dict(self) -> dict[str, Any]:
        return {"critic": self.critic.state_dict(), "critic_target": self.critic_target.state_dict(),
                "optimizer": self.optimizer.state_dict(), "multiplier": self.multiplier.clone()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = sorted(set(self.state_dict()) - set(state))
        if missing:
            raise KeyError(f"constraint state lacks {missing}: was it saved by "
                           f"LagrangianConstraint.state_dict()?")
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.multiplier.copy_(state["multiplier"])


CONSTRAINTS: dict[str, type[LagrangianConfig]] = {"energy": LagrangianConfig}
