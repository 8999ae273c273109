"""configs/config.yaml and configs/eval.yaml against the schema dataclasses (one source of truth
for defaults: the YAML repeats them for the reader, this keeps the two equal)."""
from __future__ import annotations

import dataclasses

import pytest
import yaml

from robo_rl.cli import config_dir
from robo_rl.loops.realtime import RealtimeConfig
from robo_rl.plasticity import PlasticityConfig
from robo_rl.config_schema import (ConfigError, EvalRunConfig, ReplayConfig, TrainConfig,
                                   TrainRunConfig, check_train_config, compose_train_config)


def _yaml(name: str) -> dict:
    return yaml.safe_load((config_dir() / name).read_text())


def _defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = dataclasses.asdict(f.default_factory())
    return out


@pytest.mark.parametrize("section,cls", [("train", TrainConfig), ("replay", ReplayConfig),
                                         ("plasticity", PlasticityConfig), ("realtime", RealtimeConfig)])
def test_config_yaml_sections_equal_the_dataclass_defaults(section, cls):
    assert _yaml("config.yaml")[section] == _defaults(cls)


def test_config_yaml_top_level_equals_the_schema():
    values = _yaml("config.yaml")
    top = {k: v for k, v in _defaults(TrainRunConfig).items()
           if k not in ("train", "replay", "hardware") and v != "???"}  # groups: agent/task/constraint/hardware
    assert {k: values[k] for k in top} == top


def test_eval_yaml_equals_the_schema():
    values = {k: v for k, v in _yaml("eval.yaml").items() if k not in ("defaults", "hydra")}
    defaults = _defaults(EvalRunConfig)
    assert values == defaults   # checkpoint: ??? (required) in both


def test_collect_yaml_equals_the_schema():
    from robo_rl.offline.collect import CollectRunConfig

    values = {k: v for k, v in _yaml("collect.yaml").items() if k not in ("defaults", "hydra")}
    defaults = {k: v for k, v in _defaults(CollectRunConfig).items() if k != "task"}  # task: a group
    assert values == defaults   # out: ??? (required) in both


def test_keep_every_keeps_step_checkpoints_beside_latest(tmp_path):
    from robo_rl.checkpoint import load_checkpoint
    from robo_rl.loops.online import train
    from tests.conftest import SMALL_TRAIN

    with pytest.raises(ConfigError, match="keep_every must be 0 or a multiple of train.checkpoint_every"):
        check_train_config(compose_train_config([*SMALL_TRAIN, "train.keep_every=100"]))
    train(compose_train_config([*SMALL_TRAIN, "train.keep_every=150"]), tmp_path)
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("step_*.pt"))
    assert kept == ["step_00000000.pt", "step_00000150.pt", "step_00000300.pt"]
    assert load_checkpoint(tmp_path / "checkpoints" / "step_00000150.pt")["step"] == 150


def test_composed_config_is_typed_and_range_checked():
    cfg = compose_train_config(["train.steps=7"])
    assert cfg.train.steps == 7 and isinstance(cfg.train.replay_ratio, float)
    check_train_config(cfg)
    with pytest.raises(ConfigError, match="train.steps must be > 0"):
        check_train_config(compose_train_config(["train.steps=0"]))
    with pytest.raises(ConfigError, match="plasticity.every must be >= 0"):
        check_train_config(compose_train_config(["plasticity.every=-5"]))
    with pytest.raises(ConfigError, match="only arm/ tasks"):
        check_train_config(compose_train_config(["constraint=energy", "task.options={}"]))
