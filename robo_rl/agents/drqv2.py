"""DrQ-v2 (Yarats et al. 2021): DDPG-style learning from pixels with data augmentation.

One learner update (``DrQv2Agent.update``), as in the paper's algorithm box; sigma(t) is the
scheduled exploration std (``exploration_std``: linear std_start -> std_end over std_steps agent
steps), c the target-policy noise clip:

    sample a batch (s, a, r, d, s') of B n-step transitions     # d = gamma^n or 0 (the replay)
    s, s' <- random_shift(s), random_shift(s')                   # replicate pad 4, crop back
    h = f(s);  h' = f(s') without gradient                       # conv encoder
    a' = clamp(mu(h') + clip(sigma(t) eps, -c, c), -1, 1)
    y  = r + d * min(Qbar_1, Qbar_2)(h', a')                     # ``bootstrap_target``
    critic (+ encoder) loss = sum_i mean_B (Q_i(h, a) - y)^2;  Adam;  Qbar <- (1-tau) Qbar + tau Q
    a~ = clamp(mu(sg(h)) + clip(sigma(t) eps, -c, c)) (straight-through clamp)
    actor loss = -mean_B min(Q_1, Q_2)(sg(h), a~);  Adam        # the encoder sees the critic only

mu = tanh(MLP(trunk(h))), trunk = Linear -> LayerNorm(feature_dim) -> Tanh, per head; the twin
critic is one batched 2-member ensemble (robo_rl.nets.EnsembleCritic). With state observations
the encoder is the identity and ``state_trunk`` sends the state through the same trunk, so the
learner is DrQ-v2's networks on states (DrM's state-observation variant uses it).

Departures from facebookresearch/drqv2, on purpose:
* "update every 2 steps" is the loop's ``train.replay_ratio: 0.5`` (one name for learner updates
  per agent step across robo_rl); the pixel presets (configs/preset/) set it.
* "num_expl_steps" uniform actions are the loop's ``train.seed_steps`` (2000 agent steps = the
  paper's 4000 frames at action repeat 2 in the presets).
* Random shift is one integer gather (robo_rl.nets.random_shift), the same crop as drqv2's
  grid_sample with integer shifts, exact and ~4x cheaper on CPU.
* Polyak averaging follows the critic step rather than the actor step (the actor uses the online
  critic, so the order does not change any update).

``DrMAgent`` (robo_rl/agents/drm.py) builds on this learner through its hooks:
``exploration_std``, ``bootstrap_target``, ``before_critic`` and ``networks()``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from robo_rl.agents.base import ActorCriticConfig, LearnerBase, check_step_argument, probe_modules
from robo_rl.agents.common import (clipped_noise_action, critic_step, linear_schedule,
                                   split_minibatches, unit_box_action_dim)
from robo_rl.config_utils import dataclass_from_dict
from robo_rl.nets import (DeterministicActor, EnsembleCritic, FeatureTrunk, ObservationEncoder,
                          random_shift)

PRECISIONS = ("float32", "bfloat16")
AUGMENTATIONS = ("shift", "none")


@dataclass
class DrQv2Config(ActorCriticConfig):
    """Every number of DrQ-v2 (defaults: the paper's, medium DMC tasks). Shared fields are
    documented on LearnerConfig / ActorCriticConfig (robo_rl/agents/base.py)."""
    name: str = "drqv2"
    batch_size: int = 256
    n_step: int = 3
    lr: float = 1e-4
    tau: float = 0.01
    hidden_dims: tuple[int, ...] = (1024, 1024)
    weight_init: str = "orthogonal"
    num_critics: int = 2                  # twin critic; the target is the min over all members
    std_start: float = 1.0                # exploration std: linear std_start -> std_end ...
    std_end: float = 0.1
    std_steps: int = 500_000              # ... over this many agent steps (easy 100k, hard 2M)
    std_clip: float = 0.3                 # target-policy and actor-sample noise clip c
    augmentation: str = "shift"           # pixels only: shift | none
    augmentation_pad: int = 4
    state_trunk: bool = True              # state features through the Linear-LayerNorm-Tanh trunk

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], base=None):
        return dataclass_from_dict(cls, values, cls.__name__, base=base, where="agent")


def check_config(cfg: DrQv2Config) -> None:
    problems = []
    if cfg.batch_size < 1 or cfg.n_step < 1 or cfg.num_critics < 1:
        problems.append(f"batch_size ({cfg.batch_size}), n_step ({cfg.n_step}) and num_critics "
                        f"({cfg.num_critics}) must be >= 1")
    if not 0.0 < cfg.gamma <= 1.0 or not 0.0 < cfg.tau <= 1.0:
        problems.append(f"gamma ({cfg.gamma}) and tau ({cfg.tau}) must be in (0, 1]")
    if cfg.std_start < 0 or cfg.std_end < 0 or cfg.std_clip < 0 or cfg.std_steps < 0:
        problems.append("std_start, std_end, std_clip and std_steps must be >= 0")
    if cfg.augmentation not in AUGMENTATIONS:
        problems.append(f"augmentation={cfg.augmentation!r}: use one of {AUGMENTATIONS}")
    if cfg.precision not in PRECISIONS:
        problems.append(f"precision={cfg.precision!r}: use one of {PRECISIONS}")
    problems += [f"{key} must be >= 0, got {getattr(cfg, key)}" for key in ("lr", "actor_lr", "critic_lr")
                 if getattr(cfg, key) is not None and getattr(cfg, key) < 0]
    if problems:
        raise ValueError(f"agent ({cfg.name}): " + "; ".join(problems))


class DrQv2Agent(LearnerBase):
    """DrQ-v2 (a ``Learner``, robo_rl/agents/base.py); see the module docstring."""

    accepts_constraint = False  # the Lagrangian component hooks into SAC's update

    def __init__(self, cfg: DrQv2Config, observation_space, action_space, device="cpu",
                 constraint=None):
        check_config(cfg)
        if constraint is not None:
            raise ValueError(f"agent={cfg.name} takes no constraint (constraint=energy composes with "
                             f"SAC/RLPD); use constraint=none or agent=sac")
        self.cfg, self.device = cfg, torch.device(device)
        self.observation_space, self.action_space = observation_space, action_space
        self.action_dim = unit_box_action_dim(action_space, "DrQ-v2")
        self.encoder = ObservationEncoder(observation_space, cfg.encoder, cfg.weight_init)
        self.actor = DeterministicActor(self.make_trunk(), self.action_dim, cfg.hidden_dims, cfg.activation,
                                        cfg.actor_layer_norm)
        self.critic = EnsembleCritic(self.make_trunk(), self.action_dim, cfg.num_critics,
                                     cfg.hidden_dims, cfg.activation, cfg.critic_layer_norm,
                                     cfg.weight_init)
        self.setup_actor_critic_()  # targets, optimisers (the critic's also trains the encoder), RNG

    def make_trunk(self) -> FeatureTrunk:
        """A head's trunk: conv features (and, with ``state_trunk``, the state) through
        Linear -> LayerNorm -> Tanh."""
        encoder = self.encoder
        if self.cfg.state_trunk and encoder.pixel_dim == 0:  # identity encoder: project the state
            return FeatureTrunk(encoder.state_dim, 0, self.cfg.encoder.feature_dim).to(self.device)
        return FeatureTrunk(encoder.pixel_dim, encoder.state_dim, self.cfg.encoder.feature_dim).to(self.device)

    # -- the hooks DrM overrides --------------------------------------------------------------

    def exploration_std(self, step: int) -> float:
        """sigma(t): linear std_start -> std_end over std_steps agent steps."""
        cfg = self.cfg
        return linear_schedule(cfg.std_start, cfg.std_end, cfg.std_steps, step)

    def bootstrap_target(self, reward, discount, next_features, next_action) -> torch.Tensor:
        """y = r + d * min_i Qbar_i(s', a')."""
        next_q = self.q_values(self.critic_target, next_features, next_action).min(dim=0).values
        return reward + discount * next_q

    def before_critic(self, features: torch.Tensor, batch, step: int) -> dict[str, torch.Tensor]:
        """Runs on each update's detached features before the critic step (DrM: its dormant
        ratio and value net). Nothing for DrQ-v2."""
        return {}

    # -- acting --------------------------------------------------------------------------------

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.cfg.precision == "bfloat16")

    def policy_mean(self, features: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            return self.actor(features).float()

    def q_values(self, critic: EnsembleCritic, features, action) -> torch.Tensor:
        with self._autocast():
            return critic(features, action).float()

    def encode(self, obs) -> torch.Tensor:
        with self._autocast():
            return self.encoder(obs).float()

    @torch.inference_mode()
    def act(self, obs, step: int | None = None, eval_mode: bool = False) -> np.ndarray:
        """mu(s) (eval_mode) or clamp(mu(s) + sigma(step) eps, -1, 1) for one observation or a batch."""
        check_step_argument(step)
        if step is None and not eval_mode:
            raise ValueError(f"{type(self).__name__}.act explores with a std scheduled on the agent "
                             f"step: pass step=<agent step> (or eval_mode=True)")
        obs_tensor, batched = self.obs_to_tensor(obs)
        mean = self.policy_mean(self.encode(obs_tensor))
        action = mean if eval_mode else clipped_noise_action(
            mean, self.exploration_std(step), None, self.generator)
        action = action.cpu().numpy().astype(np.float32, copy=False)
        return action if batched else action[0]

    # -- learning ------------------------------------------------------------------------------

    def augment(self, obs):
        if not self.encoder.has_pixels or self.cfg.augmentation == "none":
            return obs
        pixels = random_shift(self.encoder.pixels_of(obs), self.cfg.augmentation_pad, self.generator)
        return self.encoder.with_pixels(obs, pixels)

    def update_critic(self, batch, features, next_features, step: int) -> dict[str, torch.Tensor]:
        std = self.exploration_std(step)
        with torch.no_grad():
            next_action = clipped_noise_action(self.policy_mean(next_features), std, self.cfg.std_clip,
                                               self.generator)
            target = self.bootstrap_target(batch.reward, batch.discount, next_features, next_action)
        q = self.q_values(self.critic, features, batch.action)                  # N x B
        loss = critic_step(q, target, self.critic_optimizer, self._target_params,
                           self._critic_params, self.cfg.tau)
        return {"critic_loss": loss, "q_mean": q.detach().mean(), "target_q_mean": target.mean()}

    def update_actor(self, features: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        action = clipped_noise_action(self.policy_mean(features), self.exploration_std(step),
                                      self.cfg.std_clip, self.generator)
        q = self.q_values(self.critic, features, action).min(dim=0).values
        actor_loss = -q.mean()
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward(inputs=self._actor_params)  # critic weights get no gradient
        self.actor_optimizer.step()
        return {"actor_loss": actor_loss.detach()}

    def update(self, batch_source, step: int | None = None) -> dict[str, float]:
        """One DrQ-v2 update on one batch of ``batch_size`` (see the module docstring)."""
        if step is None:
            raise ValueError(f"{type(self).__name__}.update schedules its noise on the agent step: "
                             f"pass step=<agent step>")
        batch = split_minibatches(batch_source.sample(self.cfg.batch_size), 1, self.cfg.batch_size,
                                  self.device)[0]
        self.last_batch = batch
        features = self.encode(self.augment(batch.obs))
        with torch.no_grad():
            next_features = self.encode(self.augment(batch.next_obs))
        metrics = self.before_critic(features.detach(), batch, step)
        metrics.update(self.update_critic(batch, features, next_features, step))
        metrics.update(self.update_actor(features.detach(), step))
        self.num_updates += 1
        values = dict(zip(metrics, torch.stack(list(metrics.values())).tolist()))  # one device->host copy
        values["exploration_std"] = self.exploration_std(step)
        return values

    # -- networks, checkpoints, probes ---------------------------------------------------------

    def networks(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "actor": self.actor, "critic": self.critic,
                "critic_target": self.critic_target}

    def named_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """"critic" also steps the encoder."""
        return {"actor": self.actor_optimizer, "critic": self.critic_optimizer}

    def target_networks(self) -> dict[str, str]:
        return {"critic": "critic_target"}

    def probes(self) -> dict[str, nn.Module]:
        return probe_modules({"actor": self.actor, "critic": self.critic}, self.encoder)

    def probe_forward(self, batch) -> None:
        """Every probed network once over ``batch``, deterministically (no augmentation, no noise)."""
        features = self.encode(batch.obs)
        self.policy_mean(features)
        self.q_values(self.critic, features, batch.action)
