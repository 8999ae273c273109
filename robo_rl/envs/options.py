"""Typed conversion of `EnvConfig.options` (YAML data: dicts, lists, scalars) into the values a
backend's settings dataclass or constructor expects: the config path they are addressed by, and
the converters (robo_rl.config_utils, shared with the agent and constraint configs).

Every error is a ValueError that names the key by its config path (`task.options.energy_tank`),
says what was expected and, for unknown keys, lists the valid ones:

    values = dataclass_values(ContactMazeConfig, {"energy_tank": True}, "task.options")
    ContactMazeConfig(**values)

Rules: robo_rl.config_utils (typed conversion).
"""
from __future__ import annotations

from robo_rl.config_utils import (build_dataclass, check_keys, construct, convert,  # noqa: F401
                                  dataclass_values, default_typed, field_types, plain, type_name,
                                  yaml_data)

OPTIONS_PATH = "task.options"  # how the options are addressed in configs/task/*.yaml and the CLI
