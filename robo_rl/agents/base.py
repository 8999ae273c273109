"""What every learner (SAC/RLPD now; DrQ-v2, DrM, TD3+BC, A2PR later) and every learner
component (the Lagrangian constraint now) implements, and the config schema they share.

Seams:

* ``Learner`` (protocol): what the loops call - ``act(obs, step=None, eval_mode=False)``,
  ``update(batch_source, step) -> metrics``, ``state_dict()/load_state_dict()``, ``probes()``.
* ``LearnerBase`` (optional base class): named networks and optimisers (``networks()``,
  ``named_optimizers()``, ``target_networks()``) and, built on them, the in-place surgery
  plasticity methods need: ``reinitialize_(names)`` and ``shrink_perturb_(names, alpha)``
  re-draw or perturb named modules and forget their optimiser state, without rebuilding.
* ``LearnerComponent`` (protocol) / ``Component`` (no-op base): a piece that composes with any
  actor-critic learner through hooks the learner calls on every component of its (possibly
  empty) list - per critic minibatch, in the actor loss, once per learner update. Its config
  is a ``ComponentSpec``: ``spec.build(agent_cfg, pixel_dim, state_dim, action_dim, device)``.
* ``LearnerConfig`` / ``ActorCriticConfig``: the config fields every off-policy learner shares
  (the loop and the replay read gamma, n_step and batch_size from any learner's config), and
  the network fields every actor-critic learner shares (components size their networks from
  them). Fields are OmegaConf structured-config types only (Hydra registers the dataclasses).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Optional, Protocol, runtime_checkable

import hashlib
import warnings

import numpy as np
import torch
from torch import nn

from robo_rl.agents.common import reset_optimizer_state_
from robo_rl.nets import (ACTIVATIONS, EncoderConfig, EnsembleLinear, reset_parameters_,
                          shrink_perturb_)

# ---------------------------------------------------------------------------------------------
# Config schema


@dataclass
class LearnerConfig:
    """Fields every off-policy learner has. The loop and the replay read gamma, n_step and
    batch_size (n-step discounting happens in the replay: learners see d = gamma^n)."""
    name: str = "learner"                       # the AGENTS entry that builds this learner
    batch_size: int = 256                       # B, transitions per gradient step
    gamma: float = 0.99                         # read by the replay (n-step discount)
    n_step: int = 1                             # read by the replay
    seed: Optional[int] = None                  # agent RNG; None -> drawn from torch's global RNG
    precision: str = "float32"                  # network matmuls in "float32" or "bfloat16"
    #   (autocast; losses, log-probs and optimiser state stay float32)


@dataclass
class ActorCriticConfig(LearnerConfig):
    """Networks and optimisers of an actor-critic learner (pixel encoder + per-head trunks,
    MLP heads). Components such as the Lagrangian cost critic size themselves from these."""
    hidden_dims: tuple[int, ...] = (256, 256)   # actor and each critic
    activation: str = "relu"
    weight_init: str = "default"                # "default" (nn.Linear) or "orthogonal" (DrQ-v2)
    critic_layer_norm: bool = False
    actor_layer_norm: bool = False
    lr: float = 3e-4                            # default of every optimiser's learning rate
    actor_lr: Optional[float] = None            # None -> lr
    critic_lr: Optional[float] = None           # None -> lr (also trains the pixel encoder)
    tau: float = 0.005                          # Polyak rate of the target critics
    encoder: EncoderConfig = field(default_factory=EncoderConfig)  # pixels only


# ---------------------------------------------------------------------------------------------
# Learner protocol


@runtime_checkable
class Learner(Protocol):
    """What the loops, checkpoints and plasticity probes use of a learner."""

    cfg: LearnerConfig

    def act(self, obs, step: int | None = None, eval_mode: bool = False) -> np.ndarray:
        """Action in [-1, 1] for one observation or a batch. ``step``: the agent step, for
        exploration schedules (DrQ-v2's noise std); learners without one ignore it.
        ``eval_mode``: the deterministic policy."""

    def update(self, batch_source, step: int | None = None) -> dict[str, float]:
        """One learner update drawing from ``batch_source.sample(n)``; metrics as floats."""

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimisers, schedules and RNG: everything ``load_state_dict`` restores."""

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...

    def probes(self) -> dict[str, nn.Module]:
        """Named modules plasticity probes hook (dormant ratio: Linear outputs; FAU: activation
        outputs), keyed "<network>.<path>" (e.g. "actor.net.net.0", "critic.q.layers.2")."""

    def probe_forward(self, batch) -> None:
        """Run every network of ``probes()`` once on ``batch`` (obs, action), deterministically:
        no augmentation, no sampling (robo_rl.plasticity hooks the outputs)."""

    last_batch: Any  # the last training minibatch (None before the first update): probes use it


def check_step_argument(step) -> None:
    """``act(obs, True)`` would pass eval_mode as the step: refuse it by name."""
    if isinstance(step, bool):
        raise TypeError("act(obs, step=None, eval_mode=False): pass eval_mode by keyword "
                        "(act(obs, eval_mode=True)); the second positional argument is the step")


SEED_BYTES = 8  # bytes of a state hash used as a generator seed (manual_seed takes 64 bits)


def probe_modules(heads: Mapping[str, nn.Module], encoder=None) -> dict[str, nn.Module]:
    """{"<head>.<path>": module} for every Linear/EnsembleLinear (output = pre-activation: DrM's
    dormant ratio) and activation (post-activation: FAU) of the heads, plus the conv encoder
    (``ObservationEncoder.encoder``) as "encoder" when there is one."""
    probe_types = (nn.Linear, EnsembleLinear) + tuple(ACTIVATIONS.values())
    probes: dict[str, nn.Module] = {}
    for prefix, module in heads.items():
        for name, child in module.named_modules():
            if isinstance(child, probe_types):
                probes[f"{prefix}.{name}"] = child
    if encoder is not None and getattr(encoder, "encoder", None) is not None:
        probes["encoder"] = encoder.encoder
    return probes


class LearnerBase:
    """Named networks and optimisers, and in-place surgery on them.

    A learner lists its modules in ``networks()`` (e.g. "encoder", "actor", "critic",
    "critic_target", and its components' as "<component>.<name>"), its optimisers in
    ``named_optimizers()``, and which network tracks which in ``target_networks()``
    ({"critic": "critic_target"}). Parameters are re-drawn with ``cfg.weight_init`` from
    ``self.generator`` (the learner's one RNG, so checkpoints cover the draws)."""

    cfg: ActorCriticConfig
    generator: torch.Generator
    # What act() reads: the real-time loop copies these networks (and extra_state()) into the
    # policy that acts while this learner updates (robo_rl.loops.realtime.ActingCopy).
    acting_networks: tuple[str, ...] = ("encoder", "actor")

    def obs_to_tensor(self, obs):
        """numpy (dict) observation -> tensors on device with a batch dim; also says whether
        the input already had one (vectorised envs)."""
        if self.encoder.is_dict:
            missing = {key for key in (self.encoder.pixel_key, self.encoder.state_key)
                       if key is not None} - set(obs)
            if missing:
                raise ValueError(f"observation dict lacks keys {sorted(missing)}")
            tensors = {key: self.array_to_tensor(obs[key], self.observation_space[key])
                       for key in obs if key in (self.encoder.pixel_key, self.encoder.state_key)}
            batched = next(iter(tensors.values()))[1]
            return {key: value for key, (value, _) in tensors.items()}, batched
        return self.array_to_tensor(obs, self.observation_space)

    def array_to_tensor(self, array, space):
        array = np.asarray(array, dtype=space.dtype)
        batched = array.ndim == len(space.shape) + 1
        if array.shape[batched:] != tuple(space.shape):
            raise ValueError(f"observation of shape {array.shape} does not match the space "
                             f"shape {space.shape} (optionally with a leading batch dim)")
        tensor = torch.as_tensor(array, device=self.device)
        return (tensor if batched else tensor.unsqueeze(0)), batched

    @torch.inference_mode()
    def critic_value(self, obs, action) -> np.ndarray:
        """Q(s, a) averaged over the critic's heads (float64, one per observation): S3RL's
        snapshot status. Deterministic: no augmentation, no sampling."""
        obs_tensor, batched = self.obs_to_tensor(obs)
        action = torch.as_tensor(np.asarray(action, np.float32), device=self.device)
        action = action if batched else action.unsqueeze(0)
        q = self.critic(self.encoder(obs_tensor), action).float().mean(dim=0)
        return q.reshape(-1).double().cpu().numpy()

    def restore_generator(self, saved_state: torch.Tensor, saved_device_type: str) -> None:
        """Set the agent RNG to a saved state. A state from another device type (CUDA and CPU
        generators have different states) cannot be set: reseed from a hash of the saved bytes
        instead, so loading stays deterministic, and warn that samples will differ."""
        if saved_device_type == self.device.type:
            self.generator.set_state(saved_state)
            return
        digest = hashlib.sha256(saved_state.numpy().tobytes()).digest()
        seed = int.from_bytes(digest[:SEED_BYTES], "little")
        self.generator.manual_seed(seed)
        warnings.warn(f"checkpoint's agent RNG state is for a {saved_device_type!r} generator "
                      f"and this agent runs on {self.device.type!r}: reseeded it from the saved "
                      f"state, so stochastic actions and updates will differ from the original "
                      f"device (deterministic actions are unchanged)", stacklevel=3)

    def setup_actor_critic_(self) -> None:
        """The construction steps every actor-critic learner shares, after it has built
        ``self.encoder``, ``self.actor`` and ``self.critic``: ``cfg.weight_init`` on actor and
        critic trunk, everything on ``self.device``, a frozen copy as ``critic_target``, Adam for
        the actor and for critic + encoder (the critic loss trains the pixel encoder; the actor
        sees detached features), and the learner's one RNG (``self.generator``: noise, samples,
        augmentation and re-initialisations, so a checkpoint restores them all)."""
        import copy

        from robo_rl.agents.common import make_adam, or_default
        from robo_rl.nets import init_weights_

        cfg = self.cfg
        init_weights_(self.actor, cfg.weight_init)
        init_weights_(self.critic.trunk, cfg.weight_init)
        for module in (self.encoder, self.actor, self.critic):
            module.to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self._actor_params = list(self.actor.parameters())
        self._critic_params = list(self.critic.parameters())
        self._target_params = list(self.critic_target.parameters())
        self.actor_optimizer = make_adam(self._actor_params, or_default(cfg.actor_lr, cfg.lr))
        self.critic_optimizer = make_adam(self._critic_params + list(self.encoder.parameters()),
                                          or_default(cfg.critic_lr, cfg.lr))
        seed = cfg.seed if cfg.seed is not None else int(torch.randint(2**62, ()).item())
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.num_updates = 0
        self.last_batch = None  # the last training minibatch (plasticity probes run on it)

    def networks(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def named_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        raise NotImplementedError

    def target_networks(self) -> dict[str, str]:
        """online network name -> the name of its Polyak-averaged target."""
        return {}

    # A learner whose whole state is its named networks and optimisers, its RNG and update count
    # (DrQ-v2, DrM, the TD3 family) uses these; SAC keeps its own (temperature, components).

    def extra_state(self) -> dict[str, Any]:
        """Schedule state beyond networks and optimisers (DrM adds its own)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"networks": {name: module.state_dict() for name, module in self.networks().items()},
                "optimizers": {name: opt.state_dict() for name, opt in self.named_optimizers().items()},
                "generator": self.generator.get_state(), "generator_device": self.device.type,
                "num_updates": self.num_updates, "extra": self.extra_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = sorted({"networks", "optimizers", "generator", "num_updates", "extra"} - set(state))
        if missing:
            raise KeyError(f"{type(self).__name__} state dict lacks {missing}: was it saved by "
                           f"{type(self).__name__}.state_dict()?")
        networks, optimizers = self.networks(), self.named_optimizers()
        if set(state["networks"]) != set(networks) or set(state["optimizers"]) != set(optimizers):
            raise KeyError(f"the saved networks {sorted(state['networks'])} do not match this "
                           f"learner's {sorted(networks)}: was it saved by another agent?")
        for name, module in networks.items():
            module.load_state_dict(state["networks"][name])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        self.restore_generator(state["generator"].cpu(), state.get("generator_device", self.device.type))
        self.num_updates = int(state["num_updates"])
        self.load_extra_state(state["extra"])

    def _networks_named(self, names: Iterable[str]) -> list[tuple[str, nn.Module]]:
        networks = self.networks()
        names = [names] if isinstance(names, str) else list(names)
        unknown = sorted(set(names) - set(networks))
        if unknown:
            raise KeyError(f"unknown networks {unknown}: this learner has {sorted(networks)}")
        return [(name, networks[name]) for name in names]

    def reset_optimizer_state_(self, params: Iterable[torch.Tensor]) -> int:
        """Forget every optimiser's state for ``params``; returns how many entries it cleared."""
        params = list(params)
        return sum(reset_optimizer_state_(optimizer, params)
                   for optimizer in self.named_optimizers().values())

    @torch.no_grad()
    def _sync_targets_(self, names: list[str]) -> None:
        networks, targets = self.networks(), self.target_networks()
        for name in names:
            if name in targets:
                for target, online in zip(networks[targets[name]].parameters(),
                                          networks[name].parameters()):
                    target.copy_(online)

    def reinitialize_(self, names: str | Iterable[str], sync_targets: bool = True) -> None:
        """Re-draw every parameter of the named networks in place (as at construction) and
        forget their optimiser state. ``sync_targets``: copy each re-drawn network into its
        target (``target_networks()``), as a fresh learner starts."""
        chosen = self._networks_named(names)
        for _, module in chosen:
            reset_parameters_(module, self.cfg.weight_init, generator=self.generator)
            self.reset_optimizer_state_(module.parameters())
        if sync_targets:
            self._sync_targets_([name for name, _ in chosen])

    def shrink_perturb_(self, names: str | Iterable[str], alpha: float,
                        layer_types: tuple[type[nn.Module], ...] | None = None) -> None:
        """theta <- alpha theta + (1 - alpha) theta_fresh on the Linear layers of the named
        networks (DrM's perturbation; pass targets by name too, each draws its own fresh
        weights), then forget the optimiser state of what changed."""
        for _, module in self._networks_named(names):
            changed = shrink_perturb_(module, alpha, self.cfg.weight_init, layer_types,
                                      generator=self.generator)
            self.reset_optimizer_state_(changed)


# ---------------------------------------------------------------------------------------------
# Components


@runtime_checkable
class LearnerComponent(Protocol):
    """A piece that composes with an actor-critic learner (the Lagrangian constraint: a cost
    critic, an actor penalty and a multiplier). The learner calls, on every component:

    * ``on_critic_minibatch(batch, features, next_features, next_action)`` after each of its
      critic steps, with the minibatch, detached encoder features of obs and next_obs, and the
      a' ~ pi(.|s') of its own target (so a component needs no extra actor forward);
    * ``actor_penalty(features, action)`` in the actor loss: (a per-row penalty added to the
      loss, differentiable in ``action``, or None; an aux value for ``after_learner_step``);
    * ``after_learner_step(aux)`` once per learner update, after the actor step.

    Metrics are dicts of 0-dim tensors (the learner copies all of them to the host at once).
    ``name`` keys the component's entry in the learner's state dict and its networks
    ("<name>.<network>") in the learner's ``networks()``."""

    name: str

    def on_critic_minibatch(self, batch, features: torch.Tensor, next_features: torch.Tensor,
                            next_action: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def actor_penalty(self, features: torch.Tensor,
                      action: torch.Tensor) -> tuple[torch.Tensor | None, Any]: ...

    def after_learner_step(self, aux: Any) -> dict[str, torch.Tensor]: ...

    def networks(self) -> dict[str, nn.Module]: ...

    def named_optimizers(self) -> dict[str, torch.optim.Optimizer]: ...

    def target_networks(self) -> dict[str, str]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@runtime_checkable
class ComponentSpec(Protocol):
    """A component's config: builds the component once the learner knows its feature sizes
    (``pixel_dim``/``state_dim`` of the encoder output, see ``FeatureTrunk``)."""

    def build(self, agent_cfg: ActorCriticConfig, pixel_dim: int, state_dim: int,
              action_dim: int, device) -> LearnerComponent: ...


class Component:
    """A LearnerComponent whose hooks do nothing: subclasses override the ones they need."""

    name = "component"

    def on_critic_minibatch(self, batch, features, next_features, next_action):
        return {}

    def actor_penalty(self, features, action):
        return None, None

    def after_learner_step(self, aux):
        return {}

    def networks(self) -> dict[str, nn.Module]:
        return {}

    def named_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def target_networks(self) -> dict[str, str]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass
