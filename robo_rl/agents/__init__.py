"""Learners, built by name: ``make_agent(cfg.agent, observation_space, action_space, device)``.

Each entry of ``AGENTS`` maps a config ``name`` to (config builder, agent class); the builder
takes the remaining config keys and returns the learner's config dataclass (a preset such as
``rlpd`` is a builder with other defaults for the same agent class).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from robo_rl.agents.sac import SACAgent, SACConfig, rlpd_config

AGENTS: dict[str, tuple[Callable[..., Any], type]] = {
    "sac": (lambda **values: SACConfig.from_dict(values), SACAgent),
    "rlpd": (rlpd_config, SACAgent),
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


def make_agent(agent_cfg, observation_space, action_space, device="cpu"):
    """Build the learner named by ``agent_cfg.name`` (one of ``AGENTS``)."""
    values = _as_dict(agent_cfg)
    name = values.pop("name", None)
    if name not in AGENTS:
        raise ValueError(f"unknown agent name {name!r}: set agent.name to one of {sorted(AGENTS)}")
    build_config, agent_class = AGENTS[name]
    return agent_class(build_config(**values), observation_space, action_space, device)


__all__ = ["AGENTS", "make_agent", "SACAgent", "SACConfig", "rlpd_config"]

