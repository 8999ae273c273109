"""TD3 (Fujimoto et al. 2018) and the pieces the TD3 family shares (TD3+BC, A2PR).

One learner update (``TD3Learner.update``); k counts updates, d = gamma^n or 0 (the replay):

    sample a batch (s, a, r, d, s') of B transitions;  s, s' <- normalise(s), normalise(s')
    a' = clamp(mu_bar(s') + clip(sigma eps, -c, c), -1, 1)          # target policy smoothing
    y  = r + d * min(Qbar_1, Qbar_2)(s', a')
    critic loss = sum_i mean_B (Q_i(s, a) - y)^2;  Adam
    ``after_critic``: extra networks trained on the batch (A2PR: V and the VAE)
    every ``policy_delay``-th update:                                # delayed policy update
        actor loss = ``actor_loss`` (TD3: -mean_B Q_1(s, mu(s)));  Adam
        Qbar <- (1-tau) Qbar + tau Q;  mu_bar <- (1-tau) mu_bar + tau mu

A learner of the family overrides ``actor_loss`` (and ``after_critic`` / ``build_extra_`` for more
networks) and nothing else. State observations only (D4RL-style data): pixels are an error.

State normalisation (TD3+BC): with ``normalize_states`` every network sees
(s - mean) / (std + eps), the statistics of the dataset's states, fitted once by the offline loop
(``fit_observation_stats``) and saved with the learner (buffers of the "encoder" network), so a
checkpoint acts on raw observations. Without statistics (online from scratch) it is the identity.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np
import torch
from torch import nn

from robo_rl.agents.base import ActorCriticConfig, LearnerBase, check_step_argument, probe_modules
from robo_rl.agents.common import (clipped_noise_action, critic_step, polyak_update_, split_minibatches,
                                   unit_box_action_dim)
from robo_rl.config_utils import dataclass_from_dict
from robo_rl.nets import DeterministicActor, EnsembleCritic, FeatureTrunk, init_weights_


@dataclass
class TD3Config(ActorCriticConfig):
    """Every number of TD3 (defaults: the paper's). Shared fields: LearnerConfig /
    ActorCriticConfig (robo_rl/agents/base.py); ``hidden_dims`` sizes each critic."""
    name: str = "td3"
    lr: float = 3e-4
    tau: float = 0.005
    hidden_dims: tuple[int, ...] = (256, 256)
    actor_hidden_dims: Optional[tuple[int, ...]] = None  # None -> hidden_dims
    num_critics: int = 2                  # twin critic; the target is the min over all members
    policy_noise: float = 0.2             # target policy smoothing std sigma ...
    noise_clip: float = 0.5               # ... clipped to [-c, c]
    policy_delay: int = 2                 # updates per actor (and target) step
    exploration_noise: float = 0.1        # std of the Gaussian noise when acting online
    normalize_states: bool = False        # (s - mean) / (std + eps) with the dataset's statistics
    state_std_eps: float = 1e-3           # TD3+BC's eps

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], base=None):
        return dataclass_from_dict(cls, values, cls.__name__, base=base, where="agent")


def check_config(cfg: TD3Config) -> None:
    problems = []
    if min(cfg.batch_size, cfg.n_step, cfg.num_critics, cfg.policy_delay) < 1:
        problems.append("batch_size, n_step, num_critics and policy_delay must be >= 1")
    if not 0.0 < cfg.gamma <= 1.0 or not 0.0 < cfg.tau <= 1.0:
        problems.append(f"gamma ({cfg.gamma}) and tau ({cfg.tau}) must be in (0, 1]")
    if min(cfg.policy_noise, cfg.noise_clip, cfg.exploration_noise) < 0 or cfg.state_std_eps <= 0:
        problems.append("policy_noise, noise_clip and exploration_noise must be >= 0, state_std_eps > 0")
    if cfg.precision != "float32":
        problems.append(f"precision={cfg.precision!r}: the TD3 family runs float32 only")
    problems += [f"{key} must be > 0, got {getattr(cfg, key)}" for key in ("lr", "actor_lr", "critic_lr")
                 if getattr(cfg, key) is not None and getattr(cfg, key) <= 0]
    problems += extra_problems(cfg)
    if problems:
        raise ValueError(f"agent ({cfg.name}): " + "; ".join(problems))


def extra_problems(cfg) -> list[str]:
    """Range checks of a subclass config's own fields (``cfg.problems()`` when it has one)."""
    return cfg.problems() if hasattr(cfg, "problems") else []


class StateNormalizer(nn.Module):
    """(s - mean) / (std + eps) with fixed statistics (buffers, saved in the state dict); the
    identity until ``fit_`` is called. Plays the "encoder" of the learner (``obs_to_tensor``)."""

    is_dict = False
    has_pixels = False

    def __init__(self, state_dim: int, eps: float):
        super().__init__()
        self.state_dim = self.out_dim = state_dim
        self.pixel_dim = 0
        self.eps = eps
        self.register_buffer("mean", torch.zeros(state_dim))
        self.register_buffer("scale", torch.ones(state_dim))  # 1 / (std + eps)

    @torch.no_grad()
    def fit_(self, mean: np.ndarray, std: np.ndarray) -> None:
        mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
        if mean.shape != (self.state_dim,) or std.shape != (self.state_dim,):
            raise ValueError(f"state statistics of shape {mean.shape}/{std.shape}, expected ({self.state_dim},)")
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.scale.copy_(torch.as_tensor(1.0 / (std + self.eps), dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs.float() - self.mean) * self.scale


class TD3Learner(LearnerBase):
    """TD3 (a ``Learner``, robo_rl/agents/base.py) and the base of TD3+BC and A2PR; see the
    module docstring."""

    accepts_constraint = False

    def __init__(self, cfg: TD3Config, observation_space, action_space, device="cpu", constraint=None):
        check_config(cfg)
        if constraint is not None:
            raise ValueError(f"agent={cfg.name} takes no constraint (constraint=energy composes with "
                             f"SAC/RLPD); use constraint=none")
        shape = getattr(observation_space, "shape", None)
        if shape is None or len(shape) != 1 or not np.issubdtype(observation_space.dtype, np.floating):
            raise ValueError(f"agent={cfg.name} learns from state vectors (a flat float Box), got "
                             f"{observation_space}; use task.obs_type=state")
        self.cfg, self.device = cfg, torch.device(device)
        self.observation_space, self.action_space = observation_space, action_space
        self.action_dim = unit_box_action_dim(action_space, cfg.name)
        state_dim = int(shape[0])
        self.encoder = StateNormalizer(state_dim, cfg.state_std_eps)
        actor_dims = cfg.actor_hidden_dims if cfg.actor_hidden_dims is not None else cfg.hidden_dims
        self.actor = DeterministicActor(FeatureTrunk(0, state_dim, 0), self.action_dim, actor_dims,
                                        cfg.activation, cfg.actor_layer_norm)
        self.critic = EnsembleCritic(FeatureTrunk(0, state_dim, 0), self.action_dim, cfg.num_critics,
                                     cfg.hidden_dims, cfg.activation, cfg.critic_layer_norm, cfg.weight_init)
        self.setup_actor_critic_()  # critic target, Adam for actor and critic, the RNG
        import copy

        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self._actor_target_params = list(self.actor_target.parameters())
        self.build_extra_(state_dim)

    # -- the hooks TD3+BC and A2PR override -----------------------------------------------------

    def build_extra_(self, state_dim: int) -> None:
        """Build networks beyond actor and critic (A2PR: V and the VAE)."""

    def after_critic(self, batch, obs, next_obs, next_action, target) -> tuple[dict, dict]:
        """After the critic step, on normalised obs: train extra networks; returns (metrics, context
        for ``actor_loss``)."""
        return {}, {}

    def actor_loss(self, batch, obs: torch.Tensor, context: dict) -> tuple[torch.Tensor, dict]:
        """TD3: -mean_B Q_1(s, mu(s))."""
        q = self.q1(obs, self.actor(obs))
        loss = -q.mean()
        return loss, {"actor_q": q.detach().mean()}

    # -- shared pieces ----------------------------------------------------------------------------

    def q1(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q_1(s, a), B values (the actor losses of TD3, TD3+BC and A2PR use the first critic)."""
        return self.critic(obs, action, members=self._first_member)[0]

    @property
    def _first_member(self) -> torch.Tensor:
        return torch.zeros(1, dtype=torch.long, device=self.device)

    def fit_observation_stats(self, mean: np.ndarray, std: np.ndarray) -> bool:
        """Set the state normaliser from the dataset's statistics (when ``normalize_states``);
        returns whether it was set."""
        if not self.cfg.normalize_states:
            return False
        self.encoder.fit_(mean, std)
        return True

    @torch.inference_mode()
    def act(self, obs, step: int | None = None, eval_mode: bool = False) -> np.ndarray:
        """mu(s) (eval_mode) or clamp(mu(s) + N(0, exploration_noise^2), -1, 1)."""
        check_step_argument(step)
        obs_tensor, batched = self.obs_to_tensor(obs)
        mean = self.actor(self.encoder(obs_tensor))
        action = mean if eval_mode else clipped_noise_action(mean, self.cfg.exploration_noise, None,
                                                             self.generator)
        action = action.cpu().numpy().astype(np.float32, copy=False)
        return action if batched else action[0]

    def update(self, batch_source, step: int | None = None) -> dict[str, float]:
        """One TD3-family update on one batch of ``batch_size`` (see the module docstring)."""
        cfg = self.cfg
        batch = split_minibatches(batch_source.sample(cfg.batch_size), 1, cfg.batch_size, self.device)[0]
        self.last_batch = batch
        self.num_updates += 1
        obs, next_obs = self.encoder(batch.obs), self.encoder(batch.next_obs)
        with torch.no_grad():
            next_action = clipped_noise_action(self.actor_target(next_obs), cfg.policy_noise, cfg.noise_clip,
                                               self.generator)
            target = batch.reward + batch.discount * self.critic_target(next_obs, next_action).min(dim=0).values
        q = self.critic(obs, batch.action)                                     # N x B
        # No Polyak step here: TD3 moves its targets with the delayed actor step.
        critic_loss = critic_step(q, target, self.critic_optimizer, [], [], cfg.tau)
        metrics = {"critic_loss": critic_loss, "q_mean": q.detach().mean(), "target_q_mean": target.mean()}
        extra, context = self.after_critic(batch, obs, next_obs, next_action, target)
        metrics.update(extra)
        if self.num_updates % cfg.policy_delay == 0:
            loss, actor_metrics = self.actor_loss(batch, obs, context)
            self.actor_optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=self._actor_params)  # the critic (and VAE) get no gradient
            self.actor_optimizer.step()
            polyak_update_(self._target_params, self._critic_params, cfg.tau)
            polyak_update_(self._actor_target_params, self._actor_params, cfg.tau)
            metrics.update(actor_loss=loss.detach(), **actor_metrics)
        return dict(zip(metrics, torch.stack([m.float() for m in metrics.values()]).tolist()))

    # -- networks, checkpoints, probes (state_dict / load_state_dict: LearnerBase) ------------------

    def networks(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "actor": self.actor, "actor_target": self.actor_target,
                "critic": self.critic, "critic_target": self.critic_target, **self.extra_networks()}

    def extra_networks(self) -> dict[str, nn.Module]:
        return {}

    def named_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"actor": self.actor_optimizer, "critic": self.critic_optimizer, **self.extra_optimizers()}

    def extra_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def target_networks(self) -> dict[str, str]:
        return {"critic": "critic_target", "actor": "actor_target"}

    def probes(self) -> dict[str, nn.Module]:
        return probe_modules({"actor": self.actor, "critic": self.critic, **self.extra_networks()})

    def probe_forward(self, batch) -> None:
        obs = self.encoder(batch.obs)
        self.actor(obs)
        self.critic(obs, batch.action)
        self.probe_extra(obs, batch.action)

    def probe_extra(self, obs, action) -> None:
        """Run the extra networks once (probes hook their outputs)."""

    def init_weights_of_(self, *modules: nn.Module) -> None:
        """``cfg.weight_init`` on networks built after ``setup_actor_critic_`` (A2PR's)."""
        for module in modules:
            init_weights_(module, self.cfg.weight_init)
            module.to(self.device)


def td3_config(**values) -> TD3Config:
    return TD3Config.from_dict(values)


__all__ = ["StateNormalizer", "TD3Config", "TD3Learner", "check_config", "td3_config"]
