"""DrM (Xu et al., ICLR 2024): DrQ-v2 plus three mechanisms driven by the actor's dormant ratio.

DrM is ``DrQv2Agent`` with its hooks filled in (robo_rl/agents/drqv2.py), nothing copied. Per
learner update at agent step t, with beta = the actor's dormant ratio on this update's augmented
features (robo_rl.plasticity, tau = ``dormant_threshold``; hidden units scored after their ReLU,
which is what the authors' in-place ReLU makes their Linear-output hook measure):

    if t - t_perturbed >= perturb_every:                          # dormant-ratio-guided perturbation
        alpha = clip(1 - perturb_rate * beta, alpha_min, alpha_max)
        theta <- alpha theta + (1 - alpha) theta_fresh  on every Linear layer of the actor, critic,
                 critic target and value net (fresh orthogonal weights, zero bias; conv encoder
                 and LayerNorm untouched);  Adam state of all of them reset;  t_perturbed = t
    beta <- dormant_ratio(actor, h)                               # before_critic
    if t_awake is unset, t > awaken_after_steps and beta < beta_target:  t_awake = t
    V <- expectile regression on min(Q_1, Q_2)(h, a):  loss = |tau_e - 1[V - Q > 0]| (V - Q)^2
    sigma_dorm = 1 / (1 + exp(-dormant_temperature (beta - beta_target)))   # awaken exploration
    sigma(t)   = sigma_dorm until t_awake, then max(sigma_dorm, linear(std_start -> std_end)(t - t_awake))
    lambda     = lambda_max / (1 + exp(exploit_temperature (beta - beta_target)))   # exploitation
    y = r + d * (lambda V(h') + (1 - lambda) min(Qbar_1, Qbar_2)(h', a'))
    then DrQ-v2's critic and actor steps with this sigma(t) and y.

As in XuGW-Kevin/DrM: beta of the previous update sets the perturbation factor; the value net is
trained on the online critic's Q of replay actions; sigma for acting uses the latest beta; the
perturbation resets the whole Adam state of the actor, critic (+ encoder) and value optimisers.
Departure: the perturbation fires when ``perturb_every`` agent steps have passed since the last
one (authors: ``step % interval == 0``, which an update schedule that skips steps can miss).
Presets (``drm_manipulator``, ``drm_hard``): the authors' per-domain alpha_max, lr, feature_dim
and std schedule (cfgs/task/*.yaml there).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import torch
from torch import nn

from robo_rl.agents.common import linear_schedule, make_adam, or_default
from robo_rl.agents.drqv2 import DrQv2Agent, DrQv2Config, check_config as check_drqv2_config
from robo_rl.nets import MLP, init_weights_
from robo_rl.plasticity import module_dormant_ratio

PERTURBED_NETWORKS = ("actor", "critic", "critic_target", "value")


@dataclass
class DrMConfig(DrQv2Config):
    """DrQ-v2's fields plus DrM's (defaults: the paper's, medium DMC tasks)."""
    name: str = "drm"
    dormant_threshold: float = 0.025       # tau: a unit is dormant when its score s_i < tau
    dormant_after_activation: bool = True  # hidden units scored after their ReLU, as the authors' code does
    target_dormant_ratio: float = 0.2      # beta_target in sigma_dorm, lambda and the awaken test
    dormant_temperature: float = 10.0      # sigma_dorm = 1 / (1 + exp(-this (beta - beta_target)))
    awaken_after_steps: int = 2000         # t_awake is only recorded after this many agent steps
    perturb_every: int = 100_000           # agent steps between perturbations (200k frames)
    perturb_rate: float = 2.0              # k in alpha = clip(1 - k beta, alpha_min, alpha_max)
    perturb_alpha_min: float = 0.2
    perturb_alpha_max: float = 1.0         # 0.9 manipulator, 0.6 dog/humanoid (presets)
    exploit_lambda_max: float = 0.6        # lambda_hat
    exploit_temperature: float = 50.0      # lambda = lambda_hat / (1 + exp(this (beta - beta_target)))
    expectile: float = 0.9                 # tau_e of the value net's expectile regression
    value_lr: Optional[float] = None       # None -> lr


def check_config(cfg: DrMConfig) -> None:
    check_drqv2_config(cfg)
    problems = []
    if not 0.0 <= cfg.perturb_alpha_min <= cfg.perturb_alpha_max <= 1.0:
        problems.append(f"need 0 <= perturb_alpha_min ({cfg.perturb_alpha_min}) <= perturb_alpha_max "
                        f"({cfg.perturb_alpha_max}) <= 1")
    if not 0.0 < cfg.expectile < 1.0:
        problems.append(f"expectile must be in (0, 1), got {cfg.expectile}")
    if cfg.perturb_every < 1 or cfg.awaken_after_steps < 0:
        problems.append(f"perturb_every ({cfg.perturb_every}) must be >= 1 and awaken_after_steps "
                        f"({cfg.awaken_after_steps}) >= 0")
    if not 0.0 <= cfg.dormant_threshold < 1.0 or not 0.0 <= cfg.target_dormant_ratio <= 1.0:
        problems.append("dormant_threshold must be in [0, 1) and target_dormant_ratio in [0, 1]")
    if not 0.0 <= cfg.exploit_lambda_max <= 1.0:
        problems.append(f"exploit_lambda_max must be in [0, 1], got {cfg.exploit_lambda_max}")
    if problems:
        raise ValueError(f"agent ({cfg.name}): " + "; ".join(problems))


# The authors' per-domain settings (XuGW-Kevin/DrM cfgs/task/{hard,manipulator_*,dog_*,humanoid_*}).
HARD_STD_STEPS = 2_000_000


def drm_manipulator_config(**overrides: Any) -> DrMConfig:
    """DrM on DMC manipulator: alpha_max 0.9, lr 8e-5, the hard tasks' std schedule."""
    preset = DrMConfig(name="drm_manipulator", perturb_alpha_max=0.9, lr=8e-5, std_steps=HARD_STD_STEPS)
    return DrMConfig.from_dict(overrides, base=preset)


def drm_hard_config(**overrides: Any) -> DrMConfig:
    """DrM on DMC dog and humanoid: alpha_max 0.6, lr 8e-5, feature_dim 100, hard std schedule."""
    preset = DrMConfig(name="drm_hard", perturb_alpha_max=0.6, lr=8e-5, std_steps=HARD_STD_STEPS)
    preset.encoder.feature_dim = 100
    return DrMConfig.from_dict(overrides, base=preset)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0


def expectile_loss(value: torch.Tensor, target: torch.Tensor, expectile: float) -> torch.Tensor:
    """mean |tau_e - 1[V - Q > 0]| (V - Q)^2: over-estimates weigh 1 - tau_e, under-estimates tau_e."""
    error = value - target
    weight = torch.where(error > 0, 1.0 - expectile, expectile)
    return (weight * error.pow(2)).mean()


class ValueNet(nn.Module):
    """V(s): its own trunk, then an MLP to one output."""

    def __init__(self, trunk, cfg: DrMConfig):
        super().__init__()
        self.trunk = trunk
        self.net = MLP(trunk.out_dim, cfg.hidden_dims, 1, cfg.activation)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(self.trunk(features)).squeeze(-1)


class DrMAgent(DrQv2Agent):
    """DrM (a ``Learner``); see the module docstring."""

    def __init__(self, cfg: DrMConfig, observation_space, action_space, device="cpu", constraint=None):
        check_config(cfg)
        super().__init__(cfg, observation_space, action_space, device, constraint)
        self.value = init_weights_(ValueNet(self.make_trunk(), cfg), cfg.weight_init).to(self.device)
        self.value_optimizer = make_adam(self.value.parameters(), or_default(cfg.value_lr, cfg.lr))
        self.dormant_ratio = 1.0            # beta; 1 until the first update (sigma_dorm ~ 1)
        self.awaken_step: int | None = None   # t_awake
        self.last_perturb_step = 0

    # -- the three mechanisms ------------------------------------------------------------------

    def dormant_std(self) -> float:
        cfg = self.cfg
        return sigmoid(cfg.dormant_temperature * (self.dormant_ratio - cfg.target_dormant_ratio))

    def exploration_std(self, step: int) -> float:
        """Awaken exploration: sigma_dorm until t_awake, then max(sigma_dorm, linear(t - t_awake))."""
        if self.awaken_step is None:
            return self.dormant_std()
        cfg = self.cfg
        return max(self.dormant_std(),
                   linear_schedule(cfg.std_start, cfg.std_end, cfg.std_steps, step - self.awaken_step))

    def exploit_lambda(self) -> float:
        cfg = self.cfg
        return cfg.exploit_lambda_max * sigmoid(-cfg.exploit_temperature *
                                                (self.dormant_ratio - cfg.target_dormant_ratio))

    def perturb_alpha(self) -> float:
        cfg = self.cfg
        return min(max(cfg.perturb_alpha_min, 1.0 - cfg.perturb_rate * self.dormant_ratio),
                   cfg.perturb_alpha_max)

    def perturb(self, step: int) -> float:
        """Shrink-and-perturb the Linear layers of actor, critic, critic target and value net by
        alpha(beta); reset the Adam state of every optimiser. Returns alpha."""
        alpha = self.perturb_alpha()
        self.shrink_perturb_(PERTURBED_NETWORKS, alpha)
        for optimizer in self.named_optimizers().values():
            optimizer.state.clear()
        self.last_perturb_step = step
        return alpha

    def bootstrap_target(self, reward, discount, next_features, next_action) -> torch.Tensor:
        """y = r + d * (lambda V(s') + (1 - lambda) min_i Qbar_i(s', a'))."""
        lam = self.exploit_lambda()
        explore = self.q_values(self.critic_target, next_features, next_action).min(dim=0).values
        with self._autocast():
            exploit = self.value(next_features).float()
        return reward + discount * (lam * exploit + (1.0 - lam) * explore)

    def before_critic(self, features: torch.Tensor, batch, step: int) -> dict[str, torch.Tensor]:
        """beta on this update's features, t_awake, and one expectile step of the value net."""
        self.dormant_ratio = module_dormant_ratio(self.actor, features, self.cfg.dormant_threshold,
                                                  self.cfg.dormant_after_activation)
        if (self.awaken_step is None and step > self.cfg.awaken_after_steps
                and self.dormant_ratio < self.cfg.target_dormant_ratio):
            self.awaken_step = step
        with torch.no_grad():
            q = self.q_values(self.critic, features, batch.action).min(dim=0).values
        with self._autocast():
            value = self.value(features).float()
        value_loss = expectile_loss(value, q, self.cfg.expectile)
        self.value_optimizer.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_optimizer.step()
        return {"value_loss": value_loss.detach()}

    def update(self, batch_source, step: int | None = None) -> dict[str, float]:
        perturbed = None
        if step is not None and step - self.last_perturb_step >= self.cfg.perturb_every:
            perturbed = self.perturb(step)
        metrics = super().update(batch_source, step)
        metrics.update(actor_dormant_ratio=self.dormant_ratio, exploit_lambda=self.exploit_lambda(),
                       awakened=float(self.awaken_step is not None))
        if perturbed is not None:
            metrics["perturb_alpha"] = perturbed
        return metrics

    # -- networks and checkpoints --------------------------------------------------------------

    def networks(self) -> dict[str, nn.Module]:
        return {**super().networks(), "value": self.value}

    def named_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().named_optimizers(), "value": self.value_optimizer}

    def extra_state(self) -> dict[str, Any]:
        return {"dormant_ratio": self.dormant_ratio, "awaken_step": self.awaken_step,
                "last_perturb_step": self.last_perturb_step}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.dormant_ratio = float(state["dormant_ratio"])
        self.awaken_step = None if state["awaken_step"] is None else int(state["awaken_step"])
        self.last_perturb_step = int(state["last_perturb_step"])

    def probes(self) -> dict[str, nn.Module]:
        from robo_rl.agents.base import probe_modules

        return {**super().probes(), **probe_modules({"value": self.value})}

    def probe_forward(self, batch) -> None:
        super().probe_forward(batch)
        self.value(self.encode(batch.obs))
