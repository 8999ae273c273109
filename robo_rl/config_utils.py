"""Key checks and dataclass building for config mappings (YAML, Hydra, keyword arguments): the one
place unknown and renamed keys are reported, with the valid keys named in the error."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence, TypeVar

C = TypeVar("C")


def check_keys(values: Mapping[str, Any], valid: Sequence[str], where: str,
               hints: Mapping[str, str] | None = None) -> None:
    """Reject keys of ``values`` outside ``valid`` with a ValueError naming them and the valid
    ones; ``hints`` says where some of them belong instead. ``where`` names the config
    (e.g. "task.options")."""
    not_str = [key for key in values if not isinstance(key, str)]
    if not_str:
        raise ValueError(f"{where} keys must be strings, got {not_str}.")
    unknown = sorted(set(values) - set(valid))
    if not unknown:
        return
    notes = "".join(f" {key}: {hints[key]}." for key in unknown if hints and key in hints)
    raise ValueError(f"unknown {where} key(s) {unknown}.{notes} Valid keys: {sorted(valid)}.")


def check_renamed_keys(values: Mapping[str, Any], renamed: Mapping[str, str], what: str) -> None:
    """Raise a ValueError for a config key that was renamed, naming the new key."""
    old = sorted(set(values) & set(renamed))
    if old:
        raise ValueError("; ".join(f"{what}.{key} was renamed to {what}.{renamed[key]}"
                                   for key in old))


def check_known_keys(cls: type, values: Mapping[str, Any], what: str) -> None:
    """``check_keys`` against the fields of dataclass ``cls`` (``what`` names the config in the
    message, e.g. "SAC")."""
    check_keys(values, [f.name for f in dataclasses.fields(cls)], f"{what} config")


def dataclass_from_dict(cls: type[C], values: Mapping[str, Any], what: str,
                        base: C | None = None) -> C:
    """``cls`` with the fields in ``values`` set on top of ``base`` (default: ``cls()``);
    unknown keys raise a ValueError listing the valid ones."""
    check_known_keys(cls, values, what)
    return dataclasses.replace(base if base is not None else cls(), **values)
