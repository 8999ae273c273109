"""Key checks and typed dataclass building for config mappings (YAML, Hydra, keyword arguments):
the one place unknown and renamed keys are reported, with the valid keys named in the error, and
values are converted to the dataclass field types, naming the key of a wrong value.

Conversion rules (from the field's type annotation): bool accepts only true/false; int only
integers; float integers or floats; str only strings; tuple[X, ...] / tuple[X, Y] a list (or
tuple) of the right length, each item converted; a dataclass a mapping of its fields (missing
ones keep their defaults, unknown ones are rejected); `A | B` / Optional the first alternative
that fits (None only where the type allows it); Any anything.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Callable, TypeVar

import numpy as np

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
                        base: C | None = None, where: str | None = None) -> C:
    """``cls`` with the fields in ``values`` set on top of ``base`` (default: ``cls()``),
    converted to the field types (a nested dataclass given as a mapping is set on top of the
    base's value); unknown keys raise a ValueError listing the valid ones, wrong values one
    naming ``<where>.<key>`` (``where`` defaults to ``what``)."""
    check_known_keys(cls, values, what)
    base = base if base is not None else cls()
    types_by_field = field_types(cls)
    converted = {}
    for key, value in values.items():
        tp, path = types_by_field[key], f"{where or what}.{key}"
        current = getattr(base, key)
        if isinstance(value, Mapping) and dataclasses.is_dataclass(current):
            converted[key] = dataclass_from_dict(type(current), value, path, base=current, where=path)
        else:
            converted[key] = convert(tp, value, path)
    return dataclasses.replace(base, **converted)


def plain(value: Any) -> Any:
    """A deep copy of YAML-like data as plain dicts and lists (OmegaConf containers included);
    other objects (numbers, strings, dataclass instances) are kept as they are."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [plain(item) for item in value]
    return value


def type_name(tp: Any) -> str:
    if tp is Any:
        return "any value"
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {type_name(args[0])}"
        return f"a list of {len(args)} ({', '.join(type_name(arg) for arg in args)})"
    if origin in (dict, Mapping):
        return "a mapping"
    if origin is list:
        return "a list"
    if dataclasses.is_dataclass(tp):
        return f"a mapping of {tp.__name__} fields"
    return {bool: "a bool (true/false)", int: "an integer", float: "a number",
            str: "a string", np.ndarray: "a list of numbers"}.get(tp, getattr(tp, "__name__", str(tp)))


class _Mismatch(Exception):
    """The value does not fit the type (turned into a ValueError naming the key)."""


def convert(tp: Any, value: Any, where: str) -> Any:
    """`value` converted to type `tp`, or a ValueError naming `where`."""
    try:
        return _convert(tp, value, where)
    except _Mismatch:
        raise ValueError(f"{where}={value!r} must be {type_name(tp)}.") from None


def _convert(tp: Any, value: Any, where: str) -> Any:
    if tp is Any:
        return plain(value)
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _Mismatch
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except _Mismatch:
                continue
        raise _Mismatch
    if origin is tuple:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
            raise _Mismatch
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            item_types = [args[0]] * len(value)
        elif len(args) == len(value):
            item_types = list(args)
        else:
            raise _Mismatch
        return tuple(convert(item_tp, item, f"{where}[{i}]")
                     for i, (item_tp, item) in enumerate(zip(item_types, value)))
    if origin is list:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
            raise _Mismatch
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [convert(item_tp, item, f"{where}[{i}]") for i, item in enumerate(value)]
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _Mismatch
        key_tp, item_tp = typing.get_args(tp) or (Any, Any)
        return {convert(key_tp, key, f"{where} key"): convert(item_tp, item, f"{where}.{key}")
                for key, item in value.items()}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise _Mismatch
        return build_dataclass(tp, value, where)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is np.ndarray:
        if isinstance(value, np.ndarray):
            return value
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
            try:
                return np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                raise _Mismatch from None
        raise _Mismatch
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _Mismatch
    return plain(value)  # an annotation this module does not know: passed through unchanged


def default_typed(default: Any) -> Any:
    """The type a parameter without an annotation is checked against: its default's type for
    plain scalars (bool/int/float/str), else Any."""
    if isinstance(default, bool):
        return bool
    if isinstance(default, (int, float, str)):
        return float if isinstance(default, float) else type(default)
    return Any


def field_types(cls: type) -> dict[str, Any]:
    """Field name -> resolved type annotation of dataclass `cls`."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def dataclass_values(cls: type, values: Mapping[str, Any], where: str,
                     exclude: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The entries of `values` converted to the field types of dataclass `cls` (unknown keys
    rejected with the valid list). `exclude` maps fields that may not be set here to a note on
    where they are set instead."""
    exclude = exclude or {}
    types_by_field = {name: tp for name, tp in field_types(cls).items() if name not in exclude}
    check_keys(values, list(types_by_field), where, hints=exclude)
    return {key: convert(types_by_field[key], value, f"{where}.{key}")
            for key, value in values.items()}


def build_dataclass(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """`cls(**converted values)`; a ValueError from its own checks is prefixed with `where`."""
    converted = dataclass_values(cls, values, where)
    return construct(lambda: cls(**converted), where)


def construct(factory: Callable[[], Any], where: str) -> Any:
    try:
        return factory()
    except (ValueError, TypeError) as error:
        raise ValueError(f"{where}: {error}") from error


def yaml_data(value: Any) -> Any:
    """A dataclass default as YAML data: dataclasses become dicts, tuples lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: yaml_data(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [yaml_data(item) for item in value]
    if isinstance(value, Mapping):
        return {key: yaml_data(item) for key, item in value.items()}
    return value
