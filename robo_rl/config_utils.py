"""Building config dataclasses from (Hydra) mappings, with unknown keys named in the error."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

C = TypeVar("C")


def check_known_keys(cls: type, values: Mapping[str, Any], what: str) -> None:
    """Raise a ValueError naming the keys of ``values`` that are no field of dataclass ``cls``,
    with the valid ones (``what`` names the config in the message, e.g. "SAC")."""
    valid = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - valid)
    if unknown:
        raise ValueError(f"unknown {what} config keys {unknown}: valid keys are {sorted(valid)}")


def dataclass_from_dict(cls: type[C], values: Mapping[str, Any], what: str,
                        base: C | None = None) -> C:
    """``cls`` with the fields in ``values`` set on top of ``base`` (default: ``cls()``);
    unknown keys raise a ValueError listing the valid ones."""
    check_known_keys(cls, values, what)
    return dataclasses.replace(base if base is not None else cls(), **values)
