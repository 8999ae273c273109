"""`robo-rl` command line: Hydra-configured subcommands.

    robo-rl train agent=sac task=dmc/cheetah_run seed=1 train.steps=50000 hydra.run.dir=runs/x
    robo-rl train hydra.run.dir=runs/x resume=true
    robo-rl train -m seed=0,1,2 hydra/launcher=joblib
    robo-rl eval checkpoint=runs/x/checkpoints/latest.pt episodes=10 video=true
    robo-rl collect task=gym/Hopper-v5 policy=runs/x/checkpoints/latest.pt kind=expert reference.expert=... out=data/h
    robo-rl record task=arm/reach source=scripted|keyboard|spacemouse|ros episodes=10 out=demos/reach [hardware=twin]
    robo-rl train mode=offline agent=a2pr task=gym/Hopper-v5 dataset=data/h train.steps=100000
    robo-rl dataset info data/h | concat A B --out C --kind medium-expert | export-minari | import-minari
    robo-rl train task=arm/reach hardware=twin       # through ROS 2 nodes (pip install 'robo_rl[ros]')
    robo-rl ros up twin [task=reach] [domain_id=42] [record=session.mcap]
"""
from __future__ import annotations

import difflib
import os
import re
import sys
import traceback
from importlib import resources
from pathlib import Path

# OpenMP threads that spin while waiting collapse throughput when cores are shared (measured 35 ->
# 5 updates/s with 2 threads on a busy 2-core machine); set before torch loads. Users may override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from omegaconf import DictConfig, OmegaConf  # noqa: E402

from robo_rl.config_schema import ConfigError, register_configs  # noqa: E402

USAGE = __doc__
EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C


DEBUG_ENV = "ROBO_RL_DEBUG"  # ROBO_RL_DEBUG=1 (or HYDRA_FULL_ERROR=1) shows tracebacks


def config_dir() -> Path:
    return Path(str(resources.files("robo_rl.configs")))


def available(group: str) -> list[str]:
    """Config names of a group (e.g. task -> ['arm/reach', 'dmc/cheetah_run', ...])."""
    root = config_dir() / group
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml"))


def _check_group_choices(overrides: list[str]) -> None:
    """Unknown agent/task/constraint names fail here with the valid list, before Hydra starts."""
    for override in overrides:
        match = re.fullmatch(r"\+?\+?(agent|task|constraint|hardware)=([^,]+)", override)
        if not match:
            continue
        group, choice = match.groups()
        names = available(group)
        if choice not in names:
            close = difflib.get_close_matches(choice, names, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown {group} '{choice}'.{hint} Valid {group} names: {', '.join(names)}")


def _check_renamed_keys(overrides: list[str]) -> None:
    """An override of a renamed key (agent.utd=2) names the new key instead of Hydra's generic
    "key not in struct"."""
    from robo_rl.agents.sac import RENAMED_KEYS

    for override in overrides:
        match = re.fullmatch(r"\+?\+?agent\.(\w+)=.*", override)
        if match and match.group(1) in RENAMED_KEYS:
            raise ConfigError(f"agent.{match.group(1)} was renamed to agent.{RENAMED_KEYS[match.group(1)]}; "
                              f"use {override.replace(match.group(1), RENAMED_KEYS[match.group(1)], 1)}")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text))


_hydra_full_error_by_user = False


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0") or _hydra_full_error_by_user


def _fail(exc: BaseException, code: int = EXIT_BAD_INPUT) -> None:
    """One clear message and a non-zero exit; the traceback only in debug mode."""
    if _debug():
        traceback.print_exception(exc)
    print(f"robo-rl: error: {describe_error(exc)}", file=sys.stderr)
    if not isinstance(exc, ConfigError) and not _debug():
        print(f"robo-rl: (run with {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
    sys.exit(code)


# What the user got wrong (config, checkpoint, data): exit 2. Anything else is a robo_rl or system
# failure (a crashed simulator, out of memory, a full disk): exit 1, still one message.
def _bad_input_errors() -> tuple[type[BaseException], ...]:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from robo_rl.checkpoint import CheckpointError
    from robo_rl.loops.online import NonFiniteError
    from robo_rl.replay import ReplayDataError

    return (ConfigError, CheckpointError, NonFiniteError, ReplayDataError, OmegaConfBaseException,
            HydraException, ValueError, TypeError)


def describe_error(exc: BaseException) -> str:
    """The exception and its causes as one readable message (Hydra's composition errors hide the
    useful part, e.g. "Value 'abc' could not be converted to Integer, full_key: train.steps", in
    their cause)."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc).strip()
        if isinstance(exc, OSError) and exc.filename is not None:
            text = f"{exc.strerror or text}: {exc.filename}"
            if isinstance(exc, (PermissionError, FileNotFoundError, NotADirectoryError)):
                text += " (is hydra.run.dir / the path writable and its parent there?)"
        text = text or type(exc).__name__
        if text not in parts:
            parts.append(text)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    lines = []
    for part in parts:
        # OmegaConf appends "full_key: ..., object_type=..." lines: keep the key, drop the types
        kept = [line.strip() for line in part.splitlines()
                if line.strip() and not line.strip().startswith(("object_type=", "reference_type="))]
        lines.append("\n  ".join(kept))
    return "\n  ".join(lines) if lines else type(exc).__name__


def _train(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from robo_rl.loops import run_training

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    print(_run_reporting_errors(lambda: run_training(cfg, run_dir),
                                f"checkpoint and replay saved in {run_dir}. Continue with: "
                                f"robo-rl train hydra.run.dir={run_dir} resume=true").summary())


def _run_reporting_errors(work, kept_on_interrupt: str | None = None):
    """work() -> its result; an error is one `robo-rl: error:` line (exit 2 for bad input), and
    Ctrl-C says what was kept (`kept_on_interrupt`) and exits EXIT_INTERRUPTED."""
    try:
        return work()
    except KeyboardInterrupt:
        if kept_on_interrupt is None:
            raise
        print(f"robo-rl: interrupted; {kept_on_interrupt}", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        _fail(exc, EXIT_BAD_INPUT if isinstance(exc, _bad_input_errors()) else EXIT_FAILURE)


def _eval(cfg: DictConfig) -> None:
    from robo_rl.loops.evaluate import run_eval

    print(_run_reporting_errors(lambda: run_eval(cfg)))


def _collect(cfg: DictConfig) -> None:
    from robo_rl.offline.collect import run_collect

    print(_run_reporting_errors(lambda: run_collect(cfg), f"the episodes collected so far are kept "
                                                          f"in {cfg.out}. Continue with the same command."))


def _record(cfg: DictConfig) -> None:
    from robo_rl.record import run_record

    print(_run_reporting_errors(lambda: run_record(cfg), f"the episodes recorded so far are kept "
                                                         f"in {cfg.out}. Continue with the same command."))


COMMANDS = {"train": ("config", _train), "eval": ("eval", _eval), "collect": ("collect", _collect),
            "record": ("record", _record)}
PLAIN_COMMANDS = ("ros", "dataset")  # plain arguments, no Hydra


def main(argv: list[str] | None = None) -> None:
    import hydra

    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        print("commands:", ", ".join([*COMMANDS, *PLAIN_COMMANDS]))
        return
    command, rest = argv[0], argv[1:]
    if command == "dataset":  # inspect, concatenate, import/export datasets (robo_rl.offline.cli)
        from robo_rl.offline.cli import main as dataset_main

        try:
            sys.exit(dataset_main(rest))
        except Exception as exc:
            _fail(exc, EXIT_BAD_INPUT if isinstance(exc, _bad_input_errors()) else EXIT_FAILURE)
    if command == "ros":  # ROS 2 bring-up: no Hydra, plain arguments (robo_rl.hardware.launcher)
        try:
            from robo_rl.hardware.launcher import main as ros_main
        except RuntimeError as exc:  # rclpy missing: how to install it
            _fail(exc)
        sys.exit(ros_main(rest))
    if command not in COMMANDS:
        print(f"robo-rl: error: unknown command '{command}'; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    try:
        _check_group_choices(rest)
        _check_renamed_keys(rest)
    except ConfigError as exc:
        _fail(exc)
    if not OmegaConf.has_resolver("slug"):
        OmegaConf.register_new_resolver("slug", _slug)
    register_configs()
    config_name, task_function = COMMANDS[command]
    sys.argv = [f"robo-rl {command}", *rest]
    # Hydra prints some of its own errors (an unwritable run dir) as tracebacks; let them reach us
    # instead, so every error is one message (with the traceback only in debug mode).
    global _hydra_full_error_by_user
    users_setting = os.environ.get("HYDRA_FULL_ERROR")
    _hydra_full_error_by_user = users_setting not in (None, "", "0")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        hydra.main(config_path=str(config_dir()), config_name=config_name,
                   version_base="1.3")(task_function)()
    except Exception as exc:
        _fail(exc, EXIT_BAD_INPUT if isinstance(exc, _bad_input_errors()) else EXIT_FAILURE)
    finally:
        if users_setting is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = users_setting


if __name__ == "__main__":
    main()
