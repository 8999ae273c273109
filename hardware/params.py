"""Dataclass settings <-> flat ROS 2 parameters (no rclpy here, so launch-file checks and
Hydra configs can use it without a ROS install).

A node's parameters are the fields of its config dataclass, plus, for the controller node, the
fields of ImpedanceParams / SafetyParams / EnergyTankParams under `impedance.`, `safety.`,
`tank.`. ROS 2 parameters have no None and no mixed scalar/array type, so:
  - tuples are double (or string) arrays; an empty array means None for optional tuples;
  - `float | tuple` fields (torque_limit, max_torque_rate) are double arrays, one value meaning
    "the same for every joint".
`from_parameters` rebuilds the dataclass and lets its own __post_init__ checks name what is
wrong, which is how a bad `ros2 param set` is rejected with a reason.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from robo_rl.controllers import EnergyTankParams, ImpedanceParams, SafetyParams

from .config import ControllerNodeConfig, TopicNames, TwinConfig

# Parameter groups of each node: prefix -> dataclass.
CONTROLLER_GROUPS: dict[str, type] = {"": ControllerNodeConfig, "impedance.": ImpedanceParams,
                                      "safety.": SafetyParams, "tank.": EnergyTankParams,
                                      "topics.": TopicNames}
TWIN_GROUPS: dict[str, type] = {"": TwinConfig, "topics.": TopicNames}
# Controller-node fields that only take effect at configure (topics, timer, model).
STRUCTURAL = ("rate_hz", "task", "joint_names", "status_rate_hz", "autostart")


def _kind(cls: type, name: str) -> str:
    """'bool' | 'int' | 'float' | 'str' | 'float_array' | 'str_array' for field `name`."""
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if hint in (bool, int, float, str):
        return hint.__name__
    if typing.get_origin(hint) is tuple or any(typing.get_origin(a) is tuple for a in args):
        inner = [t for a in ([hint] + args) if typing.get_origin(a) is tuple
                 for t in typing.get_args(a) if t is not Ellipsis]
        return "str_array" if inner and all(t is str for t in inner) else "float_array"
    if args and all(a in (int, float) for a in args):
        return "float"
    if args == [str]:
        return "str"
    raise TypeError(f"{cls.__name__}.{name}: type {hint} has no ROS 2 parameter form")


def _to_parameter(kind: str, value: Any) -> Any:
    if kind == "float_array":
        if value is None:
            return []
        return [float(v) for v in (value if isinstance(value, (tuple, list)) else (value,))]
    if kind == "str_array":
        return [str(v) for v in value]
    if kind == "float":
        return float(value)
    if kind == "str" and value is None:
        return ""
    return value


def defaults(groups: dict[str, type], **overrides: Any) -> dict[str, Any]:
    """{parameter name: default value in its ROS 2 form} for a node's groups; `overrides` are
    dataclass instances by group prefix without the dot ('' for the node's own config)."""
    params: dict[str, Any] = {}
    for prefix, cls in groups.items():
        instance = overrides.get(prefix.rstrip(".")) or cls()
        for f in dataclasses.fields(cls):
            params[prefix + f.name] = _to_parameter(_kind(cls, f.name), getattr(instance, f.name))
    return params


def _from_parameter(cls: type, name: str, value: Any) -> Any:
    kind = _kind(cls, name)
    hint = typing.get_type_hints(cls)[name]
    optional = type(None) in typing.get_args(hint)
    if kind == "float_array":
        values = tuple(float(v) for v in value)
        if not values and optional:
            return None
        scalar_allowed = float in typing.get_args(hint)
        return values[0] if scalar_allowed and len(values) == 1 else values
    if kind == "str_array":
        return tuple(str(v) for v in value)
    if kind == "float":
        return float(value)
    if kind == "str" and value == "" and optional:
        return None
    return value


def build(groups: dict[str, type], params: dict[str, Any]) -> dict[str, Any]:
    """{group prefix without dot: dataclass instance} from flat parameters; raises ValueError
    (the dataclass's own message, prefixed by the parameter group) for invalid values."""
    built = {}
    for prefix, cls in groups.items():
        kwargs = {}
        for f in dataclasses.fields(cls):
            key = prefix + f.name
            if key in params:
                try:
                    kwargs[f.name] = _from_parameter(cls, f.name, params[key])
                except (TypeError, ValueError) as error:
                    raise ValueError(f"parameter {key}={params[key]!r}: {error}") from error
        try:
            built[prefix.rstrip(".")] = cls(**kwargs)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{prefix or 'node '}parameters rejected: {error}") from error
    return built


def parameter_names(groups: dict[str, type]) -> list[str]:
    return list(defaults(groups))
