"""The config schema: Hydra structured configs, one source of truth for keys, types and defaults.

The YAML files under configs/ are composed on top of these dataclasses (registered in Hydra's
ConfigStore by ``register_configs``), so a wrong type (``train.steps=abc``), an unknown key
(``train.stepz=5``) or a missing value is rejected by name while the command line is parsed,
before anything runs. Value ranges (``train.steps > 0``) are checked by each dataclass's
``__post_init__``, which ``check_train_config`` runs by turning the composed nodes into objects.

    top level (configs/config.yaml)  -> TrainRunConfig
    train / replay                   -> TrainConfig / ReplayConfig
    task (configs/task/**)           -> robo_rl.envs.EnvConfig
    agent (configs/agent/*)          -> the learner's config dataclass (schema/agent/<name>)
    constraint (configs/constraint/*)-> LagrangianConfig (schema/constraint/energy) or none
    hardware (configs/hardware/*)    -> robo_rl.hardware.config.RobotEnvConfig or null
    plasticity                       -> robo_rl.plasticity.PlasticityConfig
    realtime                         -> robo_rl.loops.realtime.RealtimeConfig
    schedule (configs/schedule/*)    -> robo_rl.loops.schedule.{Fixed,Adaptive}ScheduleConfig
    snapshot (configs/snapshot/*)    -> robo_rl.snapshot.{NoSnapshot,S3RL}Config
    preset (configs/preset/*)        -> no schema of its own: sets keys of the groups above
    robo-rl eval (configs/eval.yaml) -> EvalRunConfig
    robo-rl collect (configs/collect.yaml) -> robo_rl.offline.collect.CollectRunConfig
    robo-rl record (configs/record.yaml)   -> robo_rl.record.RecordRunConfig

Each agent and constraint YAML starts with ``defaults: [/schema/<group>/<name>@_here_, _self_]``;
tests/test_agent_configs.py checks that every YAML value equals its dataclass default.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from robo_rl.envs.config import EnvConfig
from robo_rl.hardware.config import RobotEnvConfig
from robo_rl.loops.realtime import RealtimeConfig
from robo_rl.plasticity import PlasticityConfig

RESUME_MODES = ("auto", "true", "false")


class ConfigError(ValueError):
    """A config value is invalid; raised before any work starts."""


@dataclass
class TrainConfig:
    """The online loop: how long, how often to learn, evaluate, checkpoint and log."""

    steps: int = 15000          # agent steps (env steps = steps x action_repeat)
    seed_steps: int = 1000      # uniform random actions before learning starts
    # Learner updates per agent step: the one name for it (0.5 = one update every second step).
    # A SAC update runs agent.critic_steps_per_update critic minibatches and one actor step.
    replay_ratio: float = 1.0
    eval_every: int = 1500      # agent steps
    eval_episodes: int = 5
    checkpoint_every: int = 5000
    keep_every: int = 0         # also keep checkpoints/step_<n>.pt every this many steps (0 = only latest.pt)
    log_every: int = 500        # agent steps between train-metric rows
    video: bool = True          # mp4 of the first eval episode at each evaluation
    video_size: int = 256
    progress: bool = True       # tqdm progress bar
    # Stop early once the eval success rate (tasks that report success) is >= this in the last
    # stop_success_evals evaluations in a row; null: run all train.steps.
    stop_success_rate: float | None = None
    stop_success_evals: int = 1

    def __post_init__(self) -> None:
        problems = [f"train.{name} must be > 0 (got {getattr(self, name)})"
                    for name in ("steps", "eval_every", "eval_episodes", "checkpoint_every",
                                 "log_every", "video_size", "stop_success_evals") if not getattr(self, name) > 0]
        if self.stop_success_rate is not None and not 0.0 < self.stop_success_rate <= 1.0:
            problems.append(f"train.stop_success_rate must be in (0, 1] or null (got {self.stop_success_rate})")
        if self.keep_every < 0 or (self.keep_every and self.keep_every % self.checkpoint_every):
            problems.append(f"train.keep_every must be 0 or a multiple of train.checkpoint_every "
                            f"({self.checkpoint_every}), got {self.keep_every}")
        if self.seed_steps < 0:
            problems.append(f"train.seed_steps must be >= 0 (got {self.seed_steps})")
        if not (math.isfinite(self.replay_ratio) and self.replay_ratio > 0):
            problems.append(f"train.replay_ratio must be > 0 (got {self.replay_ratio}); e.g. 0.5, 1 or 2")
        _raise(problems)


@dataclass
class ReplayConfig:
    capacity: int = 1_000_000
    chunk_size: int = 1000      # transitions per on-disk chunk: a crash loses at most this many
    persist: bool = True        # append transitions to <run dir>/replay as they arrive
    # Resuming a run whose replay was not persisted would restart from an empty replay; that is
    # an error unless this is set (an explicit choice to continue the agent on fresh data only).
    resume_without_replay: bool = False
    demo_dir: str | None = None  # a replay directory mixed into every batch (demos / offline data)
    demo_fraction: float = 0.5  # share of each batch drawn from demo_dir
    # Demos recorded (robo-rl record) with other task settings than the run's (e.g. goal_obs_scale,
    # pos_action_scale, reward_type) would be mixed in with other observations or rewards: an error
    # unless this is set (an explicit choice).
    allow_demo_settings_mismatch: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not self.capacity > 0:
            problems.append(f"replay.capacity must be > 0 (got {self.capacity})")
        if not 0 < self.chunk_size < max(self.capacity, 2):
            problems.append(f"replay.chunk_size must be in [1, replay.capacity) (got {self.chunk_size})")
        if not 0.0 <= self.demo_fraction <= 1.0:
            problems.append(f"replay.demo_fraction must be in [0, 1] (got {self.demo_fraction})")
        if self.demo_dir:
            from pathlib import Path

            if not Path(self.demo_dir).is_dir():
                problems.append(f"replay.demo_dir {self.demo_dir} is not a directory; record demos "
                                "into a replay directory first or drop replay.demo_dir")
        _raise(problems)


@dataclass
class NoConstraintConfig:
    """constraint=none: plain reward maximisation."""

    name: str = "none"


@dataclass
class TrainRunConfig:
    """`robo-rl train`: the top level of configs/config.yaml."""

    agent: Any = MISSING        # a learner config (schema/agent/<name>)
    task: EnvConfig = MISSING
    constraint: Any = MISSING   # NoConstraintConfig or LagrangianConfig
    seed: int = 0
    device: str = "auto"        # auto | cpu | cuda | cuda:N
    threads: int | None = None  # torch CPU threads; None = min(cores, 4)
    resume: str = "auto"        # auto | true | false
    train: TrainConfig = field(default_factory=TrainConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    hardware: RobotEnvConfig | None = None  # hardware=twin|real: the task over ROS 2
    plasticity: PlasticityConfig = field(default_factory=PlasticityConfig)  # dormant ratio / FAU probes
    mode: str = "online"        # online | offline (learn from `dataset` only; train.* steps are gradient steps)
    dataset: str | None = None  # a robo_rl dataset (robo-rl collect): offline data, or mixed into online batches
    init_from: str | None = None  # a checkpoint whose learner starts this online run (offline-to-online)
    schedule: Any = MISSING     # FixedScheduleConfig or AdaptiveScheduleConfig (updates per agent step)
    snapshot: Any = MISSING     # NoSnapshotConfig or S3RLConfig (where training episodes start)
    realtime: RealtimeConfig = field(default_factory=RealtimeConfig)  # env at its own rate, learner concurrent


@dataclass
class EvalRunConfig:
    """`robo-rl eval checkpoint=PATH`."""

    checkpoint: str = MISSING
    episodes: int = 10
    video: bool = False
    video_size: int = 256
    video_path: str | None = None   # default: <checkpoint dir>/../videos/eval_checkpoint_<step>.mp4
    seed: int = 12345
    device: str = "auto"
    threads: int | None = None
    deterministic: bool = True      # act with the policy mean

    def __post_init__(self) -> None:
        problems = [f"{name} must be > 0 (got {getattr(self, name)})"
                    for name in ("episodes", "video_size") if not getattr(self, name) > 0]
        if self.seed < 0:
            problems.append(f"seed must be >= 0 (got {self.seed})")
        _raise(problems)


MODES = ("online", "offline")


def _data_problems(cfg: DictConfig) -> list[str]:
    """mode / dataset / init_from: what can be combined."""
    from pathlib import Path

    mode, dataset, init_from = cfg.get("mode", "online"), cfg.get("dataset"), cfg.get("init_from")
    problems = []
    if mode not in MODES:
        return [f"mode must be one of {', '.join(MODES)} (got {mode})"]
    if dataset and not Path(dataset).is_dir():
        problems.append(f"dataset={dataset} is not a directory; make one with `robo-rl collect` (or "
                        f"`robo-rl dataset import-minari`)")
    if init_from and not Path(init_from).is_file():
        problems.append(f"init_from={init_from} is not a file; pass a checkpoint (<run dir>/checkpoints/latest.pt)")
    if dataset and cfg.replay.get("demo_dir"):
        problems.append("dataset= and replay.demo_dir= are both set: mix in one second source (the dataset)")
    if mode == "offline":
        if not dataset:
            problems.append("mode=offline learns from a dataset only: pass dataset=PATH (robo-rl collect makes one)")
        if init_from:
            problems.append("init_from= starts an online run from a checkpoint; an offline run resumes from its own "
                            "run dir (resume=auto)")
        if cfg.get("hardware") is not None:
            problems.append("mode=offline takes no env steps: drop hardware=")
        if cfg.get("realtime") is not None and cfg.realtime.get("enabled"):
            problems.append("mode=offline takes no env steps: drop realtime.enabled=true")
        for group, default in (("schedule", "fixed"), ("snapshot", "none")):
            node = cfg.get(group)
            if node is not None and node.get("name") != default:
                problems.append(f"{group}={node.get('name')} shapes online data collection; mode=offline uses none")
        if cfg.constraint.get("name") != "none":
            problems.append("mode=offline has no per-step costs in its datasets: use constraint=none")
    return problems


def _raise(problems: list[str]) -> None:
    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))


_registered = False


def register_configs() -> None:
    """Store the schemas in Hydra's ConfigStore (idempotent; the CLI and compose helpers call it)."""
    global _registered
    if _registered:
        return
    from hydra.core.config_store import ConfigStore

    from robo_rl.agents import AGENTS, agent_config
    from robo_rl.agents.constraint import LagrangianConfig
    from robo_rl.loops.schedule import AdaptiveScheduleConfig, FixedScheduleConfig
    from robo_rl.record import RecordRunConfig
    from robo_rl.snapshot import NoSnapshotConfig, S3RLConfig

    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainRunConfig)
    store.store(name="eval_schema", node=EvalRunConfig)
    from robo_rl.offline.collect import CollectRunConfig

    store.store(name="collect_schema", node=CollectRunConfig)
    store.store(name="record_schema", node=RecordRunConfig)
    for name in AGENTS:  # a preset (rlpd) is the same dataclass with other defaults
        store.store(group="schema/agent", name=name, node=agent_config({"name": name}))
    store.store(group="schema/constraint", name="none", node=NoConstraintConfig)
    store.store(group="schema/constraint", name="energy", node=LagrangianConfig)
    store.store(group="schema/schedule", name="fixed", node=FixedScheduleConfig)
    store.store(group="schema/schedule", name="adaptive", node=AdaptiveScheduleConfig)
    store.store(group="schema/snapshot", name="none", node=NoSnapshotConfig)
    store.store(group="schema/snapshot", name="s3rl", node=S3RLConfig)
    _registered = True


def compose_train_config(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The config `robo-rl train <overrides>` would run (for benchmarks, tests and notebooks)."""
    from hydra import compose, initialize_config_dir

    from robo_rl.cli import config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def compose_collect_config(overrides: list[str] | tuple[str, ...] = ()):
    """The validated CollectRunConfig `robo-rl collect <overrides>` would run."""
    from hydra import compose, initialize_config_dir

    from robo_rl.cli import config_dir

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return OmegaConf.to_object(compose(config_name="collect", overrides=list(overrides)))


def check_train_config(cfg: DictConfig) -> None:
    """Reject invalid values before any work starts (no env built, no file written): runs the
    schema dataclasses' range checks and the learner's and constraint's own checks."""
    from robo_rl.agents import AGENTS, agent_config
    from robo_rl.agents.constraint import check_constraint_config, constraint_config

    problems: list[str] = []
    for part in ("train", "replay", "task", "hardware", "plasticity", "schedule", "snapshot", "realtime"):
        if cfg.get(part) is None:
            continue
        try:
            OmegaConf.to_object(cfg[part])
        except ConfigError as exc:
            problems.extend(str(exc).split("\n  - ")[1:])
        except (TypeError, ValueError) as exc:
            problems.append(f"{part}: {exc}")
    snapshot = cfg.get("snapshot")
    if snapshot is not None and snapshot.get("name") == "s3rl":
        if cfg.get("hardware") is not None:
            problems.append("snapshot=s3rl restores saved simulator states, which a ROS 2 arm (hardware="
                            "twin|real) cannot; train S3RL in simulation (hardware=none)")
        if snapshot.get("teacher") == "scripted" and not str(cfg.task.name).startswith("arm/"):
            problems.append(f"snapshot.teacher=scripted is the arm tasks' scripted policy (task={cfg.task.name}); "
                            "pass a teacher checkpoint instead")
    problems += _data_problems(cfg)
    if str(cfg.resume).lower() not in RESUME_MODES:
        problems.append(f"resume must be one of {', '.join(RESUME_MODES)} (got {cfg.resume})")
    try:
        agent = agent_config(cfg.agent)  # the learner's own keys and values (batch_size, ...)
        constraint = constraint_config(cfg.constraint)
        if constraint is not None and not getattr(AGENTS[cfg.agent.name][1], "accepts_constraint", False):
            raise ValueError(f"agent={cfg.agent.name} takes no constraint (constraint={constraint.name} composes "
                             f"with the SAC family: agent=sac or rlpd); use constraint=none")
        if constraint is not None:
            check_constraint_config(constraint, agent)
            if not str(cfg.task.name).startswith("arm/"):
                problems.append(f"constraint={constraint.name} reads info[{constraint.cost_key!r}] and runs the "
                                f"task's energy tank, which only arm/ tasks have (task={cfg.task.name}); use "
                                f"an arm/ task or constraint=none")
    except (TypeError, ValueError) as exc:
        problems.append(str(exc))
    _raise(problems)
