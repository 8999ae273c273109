"""Config parity (design/lessons.md 4, "defaults in two places"): every YAML under
configs/agent/ equals, field by field, the config dataclass its learner's builder returns with no
overrides (``agent_config({"name": ...})``), and holds every field; configs/constraint/energy.yaml
equals ``LagrangianConfig()``. A top-level ``defaults`` list (the schema line Hydra composes on)
is ignored. Also: each builder's dataclass works as an OmegaConf structured config."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from robo_rl.agents import AGENTS, LearnerConfig, agent_config, constraint_config
from robo_rl.agents.constraint import CONSTRAINTS, LagrangianConfig


def config_root() -> Path:
    from robo_rl.cli import config_dir
    return Path(config_dir())


def yaml_values(path: Path, group: str) -> dict[str, Any]:
    """The group's values in a YAML: without its ``defaults`` list, and for a file in
    ``# @package _global_`` form, the node under the group's name."""
    text = path.read_text()
    values = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    values.pop("defaults", None)
    if text.lstrip().startswith("# @package _global_"):
        values = values[group]
    return values


def plain(value: Any) -> Any:
    """A dataclass field value as YAML writes it: tuples as lists, dataclasses as mappings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [plain(item) for item in value]
    return value


def mismatches(values: dict[str, Any], expected: Any, where: str) -> list[str]:
    """Every difference between a YAML mapping and a config dataclass, one line each."""
    problems = []
    fields = {f.name: plain(getattr(expected, f.name)) for f in dataclasses.fields(expected)}
    for name, want in fields.items():
        if name not in values:
            problems.append(f"{where}: field {name!r} missing (dataclass default {want!r})")
        elif isinstance(want, dict) and isinstance(values[name], dict):
            nested = getattr(expected, name)
            problems += mismatches(values[name], nested, f"{where}.{name}")
        elif values[name] != want or (type(values[name]) is bool) != (type(want) is bool):
            problems.append(f"{where}.{name}: YAML {values[name]!r} != dataclass {want!r}")
    problems += [f"{where}: YAML key {name!r} is no field of {type(expected).__name__}"
                 for name in values if name not in fields]
    return problems


def agent_yamls(root: Path) -> list[Path]:
    return sorted((root / "agent").glob("*.yaml"))


def agent_yaml_mismatches(path: Path) -> list[str]:
    values = yaml_values(path, "agent")
    name = values.get("name")
    if name not in AGENTS:
        return [f"{path.name}: name {name!r} is no AGENTS entry ({sorted(AGENTS)})"]
    problems = [] if path.stem == name else [f"{path.name}: name {name!r} != file name"]
    return problems + mismatches(values, agent_config({"name": name}), f"agent/{path.name}")


def energy_yaml_mismatches(path: Path) -> list[str]:
    return mismatches(yaml_values(path, "constraint"), LagrangianConfig(),
                      f"constraint/{path.name}")


def test_every_agent_yaml_equals_its_builders_defaults():
    paths = agent_yamls(config_root())
    assert {path.stem for path in paths} >= {"sac", "rlpd"}
    problems = [line for path in paths for line in agent_yaml_mismatches(path)]
    assert not problems, "\n".join(problems)


def test_every_learner_has_a_yaml():
    assert {path.stem for path in agent_yamls(config_root())} == set(AGENTS)


def test_energy_yaml_equals_lagrangian_config_defaults():
    path = config_root() / "constraint" / "energy.yaml"
    problems = energy_yaml_mismatches(path)
    assert not problems, "\n".join(problems)
    assert set(CONSTRAINTS) == {"energy"}
    assert constraint_config(yaml_values(path, "constraint")) == LagrangianConfig()


def test_mismatch_finder_reports_values_missing_and_unknown_keys():
    expected = agent_config({"name": "sac"})
    values = plain(expected)
    assert mismatches(values, expected, "sac") == []
    values.update(actor_q_reduction="mean", lr_typo=1.0)
    values["encoder"]["feature_dim"] = 64
    del values["tau"]
    assert sorted(mismatches(values, expected, "sac")) == sorted([
        "sac.actor_q_reduction: YAML 'mean' != dataclass 'min'",
        "sac: field 'tau' missing (dataclass default 0.005)",
        "sac.encoder.feature_dim: YAML 64 != dataclass 50",
        "sac: YAML key 'lr_typo' is no field of SACConfig"])
    values = plain(expected) | {"critic_layer_norm": 0}  # a bool written as a number
    assert mismatches(values, expected, "sac") == [
        "sac.critic_layer_norm: YAML 0 != dataclass False"]


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_builder_config_is_an_omegaconf_structured_config(name):
    config = agent_config({"name": name})
    assert isinstance(config, LearnerConfig)
    node = OmegaConf.structured(config)  # what Hydra's ConfigStore holds as the schema
    assert agent_config(node) == config
    for key in ("gamma", "n_step", "batch_size"):  # what the loop and replay read
        assert node[key] == getattr(config, key)


def test_lagrangian_config_is_an_omegaconf_structured_config():
    node = OmegaConf.structured(LagrangianConfig)
    assert constraint_config(node) == LagrangianConfig()


def test_sac_dataclass_default_is_classic_sac():
    config = agent_config({"name": "sac"})
    assert config.actor_q_reduction == "min" and config.critic_steps_per_update == 1
    rlpd = agent_config({"name": "rlpd"})
    assert rlpd.actor_q_reduction == "mean" and rlpd.num_critics == 10


def test_wrong_value_types_in_agent_and_constraint_configs_are_named():
    """Configs built by name (benches, tests, notebooks) get the same typed check as the CLI."""
    import pytest

    from robo_rl.agents import agent_config, constraint_config

    with pytest.raises(ValueError, match=r"agent\.lr='fast' must be a number"):
        agent_config({"name": "sac", "lr": "fast"})
    with pytest.raises(ValueError, match=r"agent\.encoder\.feature_dim='x' must be an integer"):
        agent_config({"name": "sac", "encoder": {"feature_dim": "x"}})
    with pytest.raises(ValueError, match=r"constraint\.budget='low' must be a number"):
        constraint_config({"name": "energy", "budget": "low"})
    # a partial nested mapping is set on top of the preset's value, lists become tuples
    cfg = agent_config({"name": "rlpd", "hidden_dims": [32, 32], "encoder": {"feature_dim": 20}})
    assert cfg.hidden_dims == (32, 32) and cfg.encoder.feature_dim == 20 and cfg.num_critics == 10


def _field_defaults(cls):
    """An instance holding the dataclass's field defaults, without its __post_init__ checks
    (S3RLConfig refuses to exist without a teacher)."""
    instance = object.__new__(cls)
    for f in dataclasses.fields(cls):
        value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        setattr(instance, f.name, value)
    return instance


def _group_schemas():
    from robo_rl.loops.schedule import AdaptiveScheduleConfig, FixedScheduleConfig
    from robo_rl.snapshot import NoSnapshotConfig, S3RLConfig

    return [("schedule", "fixed", FixedScheduleConfig), ("schedule", "adaptive", AdaptiveScheduleConfig),
            ("snapshot", "none", NoSnapshotConfig), ("snapshot", "s3rl", S3RLConfig)]


@pytest.mark.parametrize("group, name, schema", _group_schemas())
def test_schedule_and_snapshot_yamls_equal_their_dataclass_defaults(group, name, schema):
    path = config_root() / group / f"{name}.yaml"
    assert mismatches(yaml_values(path, group), _field_defaults(schema), f"{group}/{name}.yaml") == []
    assert {p.stem for p in (config_root() / group).glob("*.yaml")} == {
        n for g, n, _ in _group_schemas() if g == group}
