"""Learners, built by name: ``make_agent(cfg.agent, observation_space, action_space, device)``.

Each entry of ``AGENTS`` maps a config ``name`` to (config builder, agent class); the builder
takes the remaining config keys and returns the learner's config dataclass (a preset such as
``rlpd`` is a builder with other defaults for the same agent class). Every learner implements
``Learner`` and its config inherits ``LearnerConfig`` (robo_rl/agents/base.py); a later learner
(DrQ-v2, DrM, TD3+BC, A2PR) adds one entry here and one configs/agent/<name>.yaml, which
tests/test_agent_configs.py then holds to the builder's defaults.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from robo_rl.agents.base import (ActorCriticConfig, Component, ComponentSpec, Learner,
                                 LearnerBase, LearnerComponent, LearnerConfig)
from robo_rl.agents.constraint import LagrangianConfig, LagrangianConstraint, constraint_config
from robo_rl.agents import a2pr, drm, drqv2, td3
from robo_rl.agents.a2pr import A2PRAgent, A2PRConfig
from robo_rl.agents.drm import DrMAgent, DrMConfig
from robo_rl.agents.drqv2 import DrQv2Agent, DrQv2Config
from robo_rl.agents.sac import SACAgent, SACConfig, check_config, rlpd_config
from robo_rl.agents.td3 import TD3Config, TD3Learner
from robo_rl.agents.td3_bc import TD3BCAgent, TD3BCConfig

AGENTS: dict[str, tuple[Callable[..., Any], type, Callable[[Any], None]]] = {
    "sac": (lambda **values: SACConfig.from_dict(values), SACAgent, check_config),
    "rlpd": (rlpd_config, SACAgent, check_config),
    "drqv2": (lambda **values: DrQv2Config.from_dict(values), DrQv2Agent, drqv2.check_config),
    "drm": (lambda **values: DrMConfig.from_dict(values), DrMAgent, drm.check_config),
    "drm_manipulator": (drm.drm_manipulator_config, DrMAgent, drm.check_config),
    "drm_hard": (drm.drm_hard_config, DrMAgent, drm.check_config),
    "td3": (lambda **values: TD3Config.from_dict(values), TD3Learner, td3.check_config),
    "td3_bc": (lambda **values: TD3BCConfig.from_dict(values), TD3BCAgent, td3.check_config),
    "a2pr": (lambda **values: A2PRConfig.from_dict(values), A2PRAgent, td3.check_config),
    "a2pr_hopper": (a2pr.hopper_medium_config, A2PRAgent, td3.check_config),
    "a2pr_halfcheetah": (a2pr.halfcheetah_config, A2PRAgent, td3.check_config),
}


def _as_dict(agent_cfg) -> dict[str, Any]:
    if dataclasses.is_dataclass(agent_cfg) and not isinstance(agent_cfg, type):
        return {f.name: getattr(agent_cfg, f.name) for f in dataclasses.fields(agent_cfg)}
    if isinstance(agent_cfg, Mapping):
        return dict(agent_cfg)
    try:  # Hydra / OmegaConf DictConfig
        from omegaconf import DictConfig, OmegaConf
        if isinstance(agent_cfg, DictConfig):
            return OmegaConf.to_container(agent_cfg, resolve=True)
    except ImportError:
        pass
    raise TypeError(f"agent config must be a mapping, DictConfig or config dataclass, "
                    f"got {type(agent_cfg).__name__}")


def agent_config(agent_cfg):
    """The validated config dataclass of the learner named by ``agent_cfg.name``: unknown keys and
    invalid values raise here, before any environment or network is built."""
    values = _as_dict(agent_cfg)
    name = values.pop("name", None)
    if name not in AGENTS:
        raise ValueError(f"unknown agent name {name!r}: set agent.name to one of {sorted(AGENTS)}")
    build_config, _, check = AGENTS[name]
    config = build_config(**values)
    check(config)
    return config


def upgrade_agent_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """An agent config stored by an older robo_rl (a checkpoint's config) in today's keys:
    renamed keys get their new name, with a warning. Configs a user writes get the error."""
    import warnings

    from robo_rl.agents.sac import RENAMED_KEYS

    values = dict(values)
    for old, new in RENAMED_KEYS.items():
        if old in values and new not in values:
            warnings.warn(f"the stored agent config uses the old key {old!r}; reading it as {new!r}")
            values[new] = values.pop(old)
    return values


def make_agent(agent_cfg, observation_space, action_space, device="cpu", constraint=None):
    """Build the learner named by ``agent_cfg.name`` (one of ``AGENTS``). ``constraint``: the
    Hydra ``constraint`` group (``name: none`` or ``energy``), a component config dataclass
    (``ComponentSpec``, e.g. ``LagrangianConfig``) or None."""
    name = _as_dict(agent_cfg).get("name")
    config = agent_config(agent_cfg)
    if not (dataclasses.is_dataclass(constraint) and hasattr(type(constraint), "build")):
        constraint = constraint_config(constraint)
    return AGENTS[name][1](config, observation_space, action_space, device, constraint=constraint)


__all__ = ["AGENTS", "A2PRAgent", "A2PRConfig", "TD3BCAgent", "TD3BCConfig", "TD3Config", "TD3Learner", "DrMAgent", "DrMConfig", "DrQv2Agent", "DrQv2Config", "agent_config", "constraint_config", "make_agent", "upgrade_agent_config", "ActorCriticConfig",
           "Component", "ComponentSpec", "LagrangianConfig", "LagrangianConstraint", "Learner",
           "LearnerBase", "LearnerComponent", "LearnerConfig", "SACAgent", "SACConfig",
           "rlpd_config"]

