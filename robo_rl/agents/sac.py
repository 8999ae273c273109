"""Soft Actor-Critic with a critic ensemble; RLPD is this agent with the ``rlpd_config`` preset.

One learner update (``SACAgent.update``), as in the RLPD algorithm box, with
C = ``critic_steps_per_update`` (the loop runs ``train.replay_ratio`` updates per env step, so
critic gradient steps per env step = replay_ratio x C; RLPD's "UTD 20" = 1 x 20):

    sample one batch of C * B transitions, split it into C minibatches
    for each minibatch (s, a, r, d, s'):                       # critic-only steps
        a' ~ pi(.|s'),  K = random subset of M of the N target critics
        y  = r + d * (min_{k in K} Qbar_k(s', a') - [backup_entropy] alpha * log pi(a'|s'))
        critic loss = sum_i mean_B (Q_i(s, a) - y)^2;  Adam step;  Qbar <- (1-tau) Qbar + tau Q
        every component: on_critic_minibatch(minibatch, features, next_features, a')
    on the last minibatch:                                      # one actor + temperature step
        a~ ~ pi(.|s);  actor loss = mean_B(alpha * log pi(a~|s) - reduce_i Q_i(s, a~))
                                    + sum over components of mean_B actor_penalty(s, a~)
        (reduce = min over the ensemble (classic SAC) or mean (RLPD): ``actor_q_reduction``)
        temperature loss = alpha * (entropy - target_entropy), entropy = -mean log pi(a~|s)
        every component: after_learner_step(its actor_penalty aux)

Components (robo_rl/agents/base.py ``LearnerComponent``) are an empty list for plain SAC. With a
constraint (``constraint=energy``: robo_rl/agents/constraint.py, Lagrangian SAC) each critic
minibatch also trains the cost critic on the replay's per-step cost (its target reuses the
reward target's a'), the actor penalty is lambda * Q_c(s, a~), and lambda takes one
dual-ascent step per learner update.

d is the replay's discount (gamma^n, or 0 after a termination), so gamma and n_step in the
config are read by the replay, not here. Pixels (DrQ-v2 style): a conv encoder shared by actor
and critic, trained by the critic loss only; each head has its own Linear-LayerNorm-Tanh trunk;
the actor sees detached features; random-shift augmentation on obs and next_obs; the target is
computed from the online encoder under no_grad (no target encoder).

Departures from the reference code, on purpose: SAC's critic loss sums the members' MSE (RLPD
averages them; Adam makes the two equivalent up to its epsilon); the actor's log-std is squashed
into [log_std_min, log_std_max] with tanh (SAC-AE/DrQ) rather than clipped, so its gradient
never vanishes at the bounds.

Speed (CPU, state obs, 256x256, batch 256): ~70% of an update is matmul time (torch.profiler),
so the code only trims the rest: critics as one batched ensemble, fused Adam, one foreach
Polyak step, actor and temperature in one backward with critic weight gradients pruned, one
device->host copy of the metrics, and act() without autograd or log-prob. torch.compile of the
losses gave no measurable gain at this size (and ~1-2 min of compile time), so it is not used.
``precision: bfloat16`` runs the networks under autocast: ~1.4x per update on avx512_bf16 CPUs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robo_rl.agents.base import (ActorCriticConfig, ComponentSpec, LearnerBase, LearnerComponent,
                                 check_step_argument, probe_modules)
from robo_rl.agents.common import (critic_step, make_adam, or_default, split_minibatches,
                                   unit_box_action_dim)
from robo_rl.config_utils import check_renamed_keys, dataclass_from_dict
from robo_rl.nets import MLP, EnsembleCritic, FeatureTrunk, ObservationEncoder, random_shift

HALF_LOG_TWO_PI = 0.5 * math.log(2.0 * math.pi)
LOG_TWO = math.log(2.0)
ACTOR_Q_REDUCTIONS = ("mean", "min")
AUGMENTATIONS = ("shift", "none")
PRECISIONS = ("float32", "bfloat16")


@dataclass
class SACConfig(ActorCriticConfig):
    """Every number of SAC/RLPD. Defaults: SAC (Haarnoja et al. 2018) with 2 critics.
    The shared fields (name, batch_size, gamma, n_step, seed, precision, hidden_dims, activation,
    weight_init, *_layer_norm, lr, actor_lr, critic_lr, tau, encoder) are documented on
    LearnerConfig / ActorCriticConfig (robo_rl/agents/base.py)."""
    name: str = "sac"
    num_critics: int = 2                        # N: ensemble size
    num_min_critics: int = 2                    # M: target = min over a random subset of M of N
    temperature_lr: Optional[float] = None      # None -> lr
    # Critic minibatches per learner update (one actor + temperature step per update).
    # Critic gradient steps per env step = train.replay_ratio x critic_steps_per_update;
    # RLPD's "UTD 20" = replay_ratio 1 x critic_steps_per_update 20.
    critic_steps_per_update: int = 1
    init_temperature: float = 1.0               # initial alpha
    target_entropy_scale: float = -1.0          # target entropy = scale * |A| (RLPD: -0.5)
    backup_entropy: bool = True                 # subtract alpha log pi in the target (RLPD: False)
    actor_q_reduction: str = "min"              # "min" over the ensemble (SAC) or "mean" (RLPD)
    log_std_min: float = -5.0                   # actor log-std range (tanh-squashed into it)
    log_std_max: float = 2.0
    augmentation: str = "shift"                 # pixels only: "shift" (DrQ) or "none"
    augmentation_pad: int = 4                   # random-shift padding in pixels
    #   precision "bfloat16" is ~1.4x faster per update on CPUs with avx512_bf16/AMX
    #   (bench/sac_update_speed.py --precision)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], base: "SACConfig | None" = None) -> "SACConfig":
        """Build from a (Hydra) mapping, on top of ``base`` (defaults: cls()); unknown keys
        raise a ValueError listing the valid ones, renamed keys one naming the new key."""
        check_renamed_keys(values, RENAMED_KEYS, "agent")
        return dataclass_from_dict(cls, values, "SAC", base=base, where="agent")


RENAMED_KEYS = {"utd": "critic_steps_per_update"}  # old key -> new key (an error names it)

# RLPD (Ball et al. 2023; SERL settings). The paper's "UTD 20" (GPU) is replay_ratio 1 x
# critic_steps_per_update 20. On one CPU core a 10-critic update costs ~5x a 2-critic one, so
# the preset defaults to 4 critic steps per update to keep CPU runs affordable
# (bench/sac_update_speed.py --agent rlpd); set critic_steps_per_update: 20 on a GPU.
# Mix online and offline data 50/50 (MixedSource, secondary_fraction 0.5) in the loop.
RLPD_GPU_CRITIC_STEPS = 20
RLPD_CPU_CRITIC_STEPS = 4


def rlpd_config(**overrides: Any) -> SACConfig:
    """The RLPD preset: 10 critics, min over 2, LayerNorm critics, no entropy backup,
    target entropy -|A|/2, ensemble-mean actor, several critic steps per update.
    ``overrides`` win."""
    preset = SACConfig(name="rlpd", num_critics=10, num_min_critics=2, critic_layer_norm=True,
                       critic_steps_per_update=RLPD_CPU_CRITIC_STEPS, backup_entropy=False,
                       target_entropy_scale=-0.5, actor_q_reduction="mean")
    return SACConfig.from_dict(overrides, base=preset)


# ---------------------------------------------------------------------------------------------
# Tanh-Gaussian policy


def tanh_log_det_jacobian(pre_tanh: torch.Tensor) -> torch.Tensor:
    """sum_j log(1 - tanh(u_j)^2), in the stable form 2 (log 2 - u - softplus(-2u))."""
    return (2.0 * (LOG_TWO - pre_tanh - F.softplus(-2.0 * pre_tanh))).sum(-1)


def tanh_gaussian_log_prob(pre_tanh: torch.Tensor, mean: torch.Tensor,
                           log_std: torch.Tensor) -> torch.Tensor:
    """log density of a = tanh(u) at u = ``pre_tanh``, u ~ N(mean, exp(log_std)^2) diagonal."""
    noise = (pre_tanh - mean) * torch.exp(-log_std)
    gaussian = (-0.5 * noise.pow(2) - log_std - HALF_LOG_TWO_PI).sum(-1)
    return gaussian - tanh_log_det_jacobian(pre_tanh)


def sample_tanh_gaussian(mean: torch.Tensor, log_std: torch.Tensor,
                         generator: torch.Generator | None = None):
    """Reparameterised sample a = tanh(mean + std * eps) and its log-probability."""
    noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
    pre_tanh = mean + noise * log_std.exp()
    gaussian = (-0.5 * noise.pow(2) - log_std - HALF_LOG_TWO_PI).sum(-1)
    return torch.tanh(pre_tanh), gaussian - tanh_log_det_jacobian(pre_tanh)


class TanhGaussianActor(nn.Module):
    """features -> trunk -> MLP -> (mean, log_std), log_std tanh-squashed into its range."""

    def __init__(self, trunk: FeatureTrunk, action_dim: int, cfg: SACConfig):
        super().__init__()
        self.trunk = trunk
        self.net = MLP(trunk.out_dim, cfg.hidden_dims, 2 * action_dim, cfg.activation,
                       cfg.actor_layer_norm)
        self.log_std_min, self.log_std_max = cfg.log_std_min, cfg.log_std_max

    def forward(self, features: torch.Tensor):
        mean, raw_log_std = self.net(self.trunk(features)).chunk(2, dim=-1)
        log_std = self.log_std_min + 0.5 * (self.log_std_max - self.log_std_min) * (
            torch.tanh(raw_log_std) + 1.0)
        return mean, log_std


# ---------------------------------------------------------------------------------------------
# Agent


def check_config(cfg: SACConfig) -> None:
    if not 1 <= cfg.num_min_critics <= cfg.num_critics:
        raise ValueError(f"num_min_critics={cfg.num_min_critics} must be in [1, num_critics="
                         f"{cfg.num_critics}]: lower it or raise num_critics")
    if cfg.critic_steps_per_update < 1 or cfg.batch_size < 1:
        raise ValueError(f"critic_steps_per_update ({cfg.critic_steps_per_update}) and "
                         f"batch_size ({cfg.batch_size}) must be >= 1")
    if cfg.actor_q_reduction not in ACTOR_Q_REDUCTIONS:
        raise ValueError(f"actor_q_reduction={cfg.actor_q_reduction!r}: use one of "
                         f"{ACTOR_Q_REDUCTIONS}")
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"precision={cfg.precision!r}: use one of {PRECISIONS}")
    if cfg.augmentation not in AUGMENTATIONS:
        raise ValueError(f"augmentation={cfg.augmentation!r}: use one of {AUGMENTATIONS}")
    if not cfg.log_std_min < cfg.log_std_max:
        raise ValueError(f"log_std_min ({cfg.log_std_min}) must be below log_std_max "
                         f"({cfg.log_std_max})")
    if cfg.init_temperature <= 0:
        raise ValueError(f"init_temperature must be > 0, got {cfg.init_temperature}")
    if not 0.0 < cfg.gamma <= 1.0 or not 0.0 < cfg.tau <= 1.0:
        raise ValueError(f"gamma ({cfg.gamma}) and tau ({cfg.tau}) must be in (0, 1]")
    if cfg.n_step < 1:
        raise ValueError(f"n_step must be >= 1, got {cfg.n_step}")
    for key in ("lr", "actor_lr", "critic_lr", "temperature_lr"):
        value = getattr(cfg, key)
        if value is not None and value < 0:
            raise ValueError(f"{key} must be >= 0, got {value}")


class SACAgent(LearnerBase):
    """SAC/RLPD (a ``Learner``, robo_rl/agents/base.py). ``constraint`` and ``components``:
    ``ComponentSpec``s (e.g. a ``LagrangianConfig``) whose components join the update through
    the ``LearnerComponent`` hooks; ``constraint`` is kept as ``self.constraint``."""

    accepts_constraint = True  # config checks ask before composing constraint=energy

    def __init__(self, cfg: SACConfig, observation_space, action_space, device="cpu",
                 constraint: ComponentSpec | None = None,
                 components: Sequence[ComponentSpec] = ()):
        check_config(cfg)
        self.cfg = cfg
        self.device = torch.device(device)
        self.observation_space, self.action_space = observation_space, action_space
        self.action_dim = unit_box_action_dim(action_space, "SAC")

        self.encoder = ObservationEncoder(observation_space, cfg.encoder, cfg.weight_init)
        pixel_dim, state_dim = self.encoder.pixel_dim, self.encoder.state_dim
        feature_dim = cfg.encoder.feature_dim
        self.actor = TanhGaussianActor(FeatureTrunk(pixel_dim, state_dim, feature_dim),
                                       self.action_dim, cfg)
        self.critic = EnsembleCritic(FeatureTrunk(pixel_dim, state_dim, feature_dim),
                                     self.action_dim, cfg.num_critics, cfg.hidden_dims,
                                     cfg.activation, cfg.critic_layer_norm, cfg.weight_init)
        self.setup_actor_critic_()  # targets, optimisers (the critic's also trains the encoder), RNG
        self.log_alpha = torch.tensor(math.log(cfg.init_temperature), device=self.device,
                                      requires_grad=True)
        self.target_entropy = cfg.target_entropy_scale * self.action_dim
        self.temperature_optimizer = make_adam([self.log_alpha],
                                               or_default(cfg.temperature_lr, cfg.lr))

        specs = ([constraint] if constraint is not None else []) + list(components)
        self.components: list[LearnerComponent] = [
            spec.build(cfg, pixel_dim, state_dim, self.action_dim, self.device) for spec in specs]
        self.constraint = self.components[0] if constraint is not None else None
        names = [component.name for component in self.components]
        clashes = sorted({name for name in names if names.count(name) > 1 or name in self._OWN_STATE})
        if clashes:
            raise ValueError(f"component names {clashes} clash (they key the state dict)")

    _OWN_STATE = ("encoder", "actor", "critic", "critic_target", "log_alpha", "actor_optimizer",
                  "critic_optimizer", "temperature_optimizer", "generator", "generator_device",
                  "num_updates")

    # -- acting -----------------------------------------------------------------------------

    @torch.inference_mode()  # cheaper than no_grad: no version counters on the tensors made
    def act(self, obs, step: int | None = None, eval_mode: bool = False) -> np.ndarray:
        """Action in [-1, 1] (float32) for one observation or a batch of them.
        eval_mode: the deterministic tanh(mean); otherwise a sample from the policy.
        ``step`` is unused (SAC explores by its own entropy, no schedule)."""
        check_step_argument(step)
        obs_tensor, batched = self.obs_to_tensor(obs)
        mean, log_std = self.actor(self.encoder(obs_tensor))
        if eval_mode:
            action = torch.tanh(mean)
        else:  # sample_tanh_gaussian's draw (same noise, same action) without its log-prob
            noise = torch.randn(mean.shape, generator=self.generator, device=mean.device,
                                dtype=mean.dtype)
            action = torch.tanh(mean + noise * log_std.exp())
        action = action.cpu().numpy().astype(np.float32, copy=False)
        return action if batched else action[0]

    # -- learning ---------------------------------------------------------------------------

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    def _autocast(self):
        """Network forwards in bfloat16 when cfg.precision says so (a no-op context otherwise)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.cfg.precision == "bfloat16")

    def policy(self, features: torch.Tensor):
        """(mean, log_std) of pi(.|features), always float32 (also under bfloat16 autocast)."""
        with self._autocast():
            mean, log_std = self.actor(features)
        return mean.float(), log_std.float()

    def q_values(self, critic: EnsembleCritic, features, action, members=None) -> torch.Tensor:
        """N x B (or M x B for ``members``) Q-values of ``critic``, always float32."""
        with self._autocast():
            q = critic(features, action, members)
        return q.float()

    def sample_critic_subset(self) -> torch.Tensor | None:
        """Indices of M of the N target critics, drawn without replacement; None = all."""
        if self.cfg.num_min_critics == self.cfg.num_critics:
            return None
        order = torch.randperm(self.cfg.num_critics, generator=self.generator,
                               device=self.device)
        return order[:self.cfg.num_min_critics]

    def bootstrap_target(self, reward, discount, next_features, next_action, next_log_prob,
                         members: torch.Tensor | None) -> torch.Tensor:
        """y = r + d * (min_{k in members} Qbar_k(s', a') - [backup_entropy] alpha log pi(a'|s'))."""
        next_q = self.q_values(self.critic_target, next_features, next_action, members)
        next_q = next_q.min(dim=0).values
        if self.cfg.backup_entropy:
            next_q = next_q - self.alpha.detach() * next_log_prob
        return reward + discount * next_q

    @torch.no_grad()
    def critic_target_value(self, reward, discount, next_features):
        """(y, a'): the bootstrap target with a' ~ pi(.|s'), and that a' (the cost critic's
        target reuses it, so a constraint costs no extra actor forward)."""
        next_action, next_log_prob = sample_tanh_gaussian(*self.policy(next_features),
                                                          self.generator)
        target = self.bootstrap_target(reward, discount, next_features, next_action,
                                       next_log_prob, self.sample_critic_subset())
        return target, next_action

    def _augment(self, obs):
        if not self.encoder.has_pixels or self.cfg.augmentation == "none":
            return obs
        pixels = random_shift(self.encoder.pixels_of(obs), self.cfg.augmentation_pad,
                              self.generator)
        return self.encoder.with_pixels(obs, pixels)

    def update_critic(self, batch):
        """One critic (and encoder) step and the Polyak step of the target critics.
        Returns the (graph-free) encoder features of batch.obs for the actor, and metrics."""
        features = self.encoder(self._augment(batch.obs))
        with torch.no_grad():
            next_features = self.encoder(self._augment(batch.next_obs))
            target, next_action = self.critic_target_value(batch.reward, batch.discount,
                                                           next_features)
        q = self.q_values(self.critic, features, batch.action)         # N x B
        critic_loss = critic_step(q, target, self.critic_optimizer, self._target_params,
                                  self._critic_params, self.cfg.tau)
        metrics = {"critic_loss": critic_loss, "q_mean": q.detach().mean(),
                   "target_q_mean": target.mean()}
        features = features.detach()
        for component in self.components:  # same minibatch, same a' as the reward target
            metrics.update(component.on_critic_minibatch(batch, features, next_features,
                                                         next_action))
        return features, metrics

    def temperature_loss(self, entropy: torch.Tensor) -> torch.Tensor:
        """alpha * (entropy - target_entropy): its gradient in log_alpha is alpha * (entropy -
        target), so descent lowers alpha while the policy is more random than the target."""
        return self.alpha * (entropy - self.target_entropy)

    def update_actor_and_temperature(self, features: torch.Tensor):
        """One actor step and one temperature step on detached encoder features."""
        mean, log_std = self.policy(features)
        action, log_prob = sample_tanh_gaussian(mean, log_std, self.generator)
        q = self.q_values(self.critic, features, action)               # N x B
        q_policy = q.mean(dim=0) if self.cfg.actor_q_reduction == "mean" else q.min(dim=0).values
        actor_loss = (self.alpha.detach() * log_prob - q_policy).mean()
        aux = []
        for component in self.components:  # e.g. Lagrangian: + lambda * Q_c(s, a~)
            penalty, component_aux = component.actor_penalty(features, action)
            if penalty is not None:
                actor_loss = actor_loss + penalty.mean()
            aux.append(component_aux)
        entropy = -log_prob.detach().mean()
        temperature_loss = self.temperature_loss(entropy)

        self.actor_optimizer.zero_grad(set_to_none=True)
        self.temperature_optimizer.zero_grad(set_to_none=True)
        # One backward pass for both losses: their gradients are disjoint (the actor loss sees
        # alpha detached, the temperature loss log pi detached), so the sum changes nothing.
        # inputs=: autograd prunes the critic's weight gradients, so the critic is neither
        # charged for them nor touched, with no requires_grad toggling.
        (actor_loss + temperature_loss).backward(inputs=self._actor_params + [self.log_alpha])
        self.actor_optimizer.step()
        self.temperature_optimizer.step()
        metrics = {"actor_loss": actor_loss.detach(), "entropy": entropy,
                   "temperature_loss": temperature_loss.detach(), "temperature": self.alpha.detach(),
                   "log_std_mean": log_std.detach().mean()}
        for component, component_aux in zip(self.components, aux):  # e.g. dual ascent on lambda
            metrics.update(component.after_learner_step(component_aux))
        return metrics

    def update(self, batch_source, step: int | None = None) -> dict[str, float]:
        """One learner update: critic_steps_per_update critic steps, then one actor and
        temperature step. ``step`` (from the loop) is unused by SAC; other learners schedule on it."""
        critic_steps, batch_size = self.cfg.critic_steps_per_update, self.cfg.batch_size
        minibatches = split_minibatches(batch_source.sample(critic_steps * batch_size),
                                        critic_steps, batch_size, self.device)
        critic_sums: dict[str, torch.Tensor] = {}
        for minibatch in minibatches:
            features, critic_metrics = self.update_critic(minibatch)
            for key, value in critic_metrics.items():
                critic_sums[key] = critic_sums[key] + value if key in critic_sums else value
        actor_metrics = self.update_actor_and_temperature(features)
        self.num_updates += 1
        self.last_batch = minibatch
        names = list(critic_sums) + list(actor_metrics)
        values = [v / critic_steps for v in critic_sums.values()] + list(actor_metrics.values())
        return dict(zip(names, torch.stack(values).tolist()))  # one device->host copy

    # -- checkpoints and probes ---------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder.state_dict(),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_optimizer": self.actor_optimizer.state_dict(),
            "critic_optimizer": self.critic_optimizer.state_dict(),
            "temperature_optimizer": self.temperature_optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "generator_device": self.device.type,  # a generator's state only fits its device type
            "num_updates": self.num_updates,
            **{component.name: component.state_dict() for component in self.components},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        # generator_device came later: older checkpoints lack it and were saved on this device type.
        missing = sorted(set(self.state_dict()) - set(state) - {"generator_device"})
        if missing:
            raise KeyError(f"SAC state dict lacks {missing}: was it saved by SACAgent.state_dict()?")
        self.encoder.load_state_dict(state["encoder"])
        self.actor.load_state_dict(state["actor"])
        self.critic.load_state_dict(state["critic"])
        self.critic_target.load_state_dict(state["critic_target"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.actor_optimizer.load_state_dict(state["actor_optimizer"])
        self.critic_optimizer.load_state_dict(state["critic_optimizer"])
        self.temperature_optimizer.load_state_dict(state["temperature_optimizer"])
        self.restore_generator(state["generator"].cpu(), state.get("generator_device", self.device.type))
        self.num_updates = int(state["num_updates"])
        for component in self.components:
            component.load_state_dict(state[component.name])

    def networks(self) -> dict[str, nn.Module]:
        """Named networks (LearnerBase: reinitialize_ / shrink_perturb_ act on these names)."""
        networks = {"encoder": self.encoder, "actor": self.actor, "critic": self.critic,
                    "critic_target": self.critic_target}
        for component in self.components:
            networks.update({f"{component.name}.{name}": module
                             for name, module in component.networks().items()})
        return networks

    def named_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """"critic" also steps the encoder; "temperature" holds log_alpha."""
        optimizers = {"actor": self.actor_optimizer, "critic": self.critic_optimizer,
                      "temperature": self.temperature_optimizer}
        for component in self.components:
            optimizers.update({f"{component.name}.{name}": optimizer
                               for name, optimizer in component.named_optimizers().items()})
        return optimizers

    def target_networks(self) -> dict[str, str]:
        targets = {"critic": "critic_target"}
        for component in self.components:
            targets.update({f"{component.name}.{online}": f"{component.name}.{target}"
                            for online, target in component.target_networks().items()})
        return targets

    def probes(self) -> dict[str, nn.Module]:
        """Named modules for plasticity hooks (robo_rl.plasticity): every Linear/EnsembleLinear
        and activation of the actor and critic, and the conv encoder when there is one."""
        return probe_modules({"actor": self.actor, "critic": self.critic}, self.encoder)

    def probe_forward(self, batch) -> None:
        """One deterministic pass of every probed network over ``batch`` (no augmentation, no
        sampling): the actor on obs, the critic on (obs, action)."""
        features = self.encoder(batch.obs)
        self.policy(features)
        self.q_values(self.critic, features, batch.action)
