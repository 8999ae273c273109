"""`robo-rl` command line: Hydra-configured subcommands.

    robo-rl train agent=sac task=dmc/cheetah_run seed=1 train.steps=50000 hydra.run.dir=runs/x
    robo-rl train hydra.run.dir=runs/x resume=true
    robo-rl train -m seed=0,1,2 hydra/launcher=joblib
    robo-rl eval checkpoint=runs/x/checkpoints/latest.pt episodes=10 video=true
"""
from __future__ import annotations

import difflib
import os
import re
import sys
from importlib import resources
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

# OpenMP threads that spin while waiting collapse throughput when cores are shared (measured 35 ->
# 5 updates/s with 2 threads on a busy 2-core machine); set before torch loads. Users may override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

USAGE = __doc__
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C


class ConfigError(ValueError):
    """A config value is invalid; raised before any work starts."""


def config_dir() -> Path:
    return Path(str(resources.files("robo_rl.configs")))


def available(group: str) -> list[str]:
    """Config names of a group (e.g. task -> ['arm/reach', 'dmc/cheetah_run', ...])."""
    root = config_dir() / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def _check_group_choices(overrides: list[str]) -> None:
    """Unknown agent/task/constraint names fail here with the valid list, before Hydra starts."""
    for override in overrides:
        match = re.fullmatch(r"\+?\+?(agent|task|constraint)=([^,]+)", override)
        if not match:
            continue
        group, choice = match.groups()
        names = available(group)
        if choice not in names:
            close = difflib.get_close_matches(choice, names, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown {group} '{choice}'.{hint} Valid {group} names: {', '.join(names)}")


def validate_train_config(cfg: DictConfig) -> None:
    """Reject invalid values before any work starts (no env built, no file written)."""
    from robo_rl.agents import agent_config
    from robo_rl.agents.constraint import check_constraint_config, constraint_config

    problems: list[str] = []

    def need(condition: bool, message: str) -> None:
        if not condition:
            problems.append(message)

    t, r = cfg.train, cfg.replay
    need(t.steps > 0, f"train.steps must be > 0 (got {t.steps})")
    need(t.seed_steps >= 0, f"train.seed_steps must be >= 0 (got {t.seed_steps})")
    need(t.replay_ratio > 0, f"train.replay_ratio must be > 0 (got {t.replay_ratio}); e.g. 0.5, 1 or 2")
    need(t.eval_every > 0, f"train.eval_every must be > 0 (got {t.eval_every})")
    need(t.eval_episodes > 0, f"train.eval_episodes must be > 0 (got {t.eval_episodes})")
    need(t.checkpoint_every > 0, f"train.checkpoint_every must be > 0 (got {t.checkpoint_every})")
    need(t.log_every > 0, f"train.log_every must be > 0 (got {t.log_every})")
    need(r.capacity > 0, f"replay.capacity must be > 0 (got {r.capacity})")
    need(r.chunk_size > 0, f"replay.chunk_size must be > 0 (got {r.chunk_size})")
    need(0.0 <= r.demo_fraction <= 1.0, f"replay.demo_fraction must be in [0, 1] (got {r.demo_fraction})")
    if r.demo_dir:
        need(Path(r.demo_dir).is_dir(), f"replay.demo_dir {r.demo_dir} is not a directory")
    need(str(cfg.resume).lower() in ("auto", "true", "false"), f"resume must be auto, true or false (got {cfg.resume})")
    try:
        agent = agent_config(cfg.agent)  # checks the agent's own keys and values (batch_size, utd, ...)
        constraint = constraint_config(cfg.constraint)
        if constraint is not None:
            check_constraint_config(constraint, agent)
    except (TypeError, ValueError) as exc:
        problems.append(str(exc))
    if problems:
        raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text))


def _fail(exc: BaseException) -> None:
    print(f"robo-rl: error: {exc}", file=sys.stderr)
    sys.exit(EXIT_BAD_INPUT)


def _train(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from robo_rl.checkpoint import CheckpointError
    from robo_rl.loops.online import NonFiniteError, train
    from robo_rl.replay import ReplayDataError

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        validate_train_config(cfg)
        result = train(cfg, run_dir)
    except (ConfigError, CheckpointError, NonFiniteError, ReplayDataError, ValueError) as exc:
        _fail(exc)
    except KeyboardInterrupt:
        print(f"robo-rl: interrupted; checkpoint and replay saved in {run_dir}. Continue with: "
              f"robo-rl train hydra.run.dir={run_dir} resume=true", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    print(result.summary())


def _eval(cfg: DictConfig) -> None:
    from robo_rl.checkpoint import CheckpointError
    from robo_rl.loops.evaluate import run_eval

    try:
        report = run_eval(cfg)
    except (CheckpointError, ValueError) as exc:
        _fail(exc)
    print(report)


COMMANDS = {"train": ("config", _train), "eval": ("eval", _eval)}


def main(argv: list[str] | None = None) -> None:
    import hydra

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        print("commands:", ", ".join(COMMANDS))
        return
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"robo-rl: error: unknown command '{command}'; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    try:
        _check_group_choices(rest)
    except ConfigError as exc:
        _fail(exc)
    if not OmegaConf.has_resolver("slug"):
        OmegaConf.register_new_resolver("slug", _slug)
    config_name, task_function = COMMANDS[command]
    sys.argv = [f"robo-rl {command}", *rest]
    hydra.main(config_path=str(config_dir()), config_name=config_name, version_base="1.3")(task_function)()


if __name__ == "__main__":
    main()
