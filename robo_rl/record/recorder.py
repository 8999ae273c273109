"""`robo-rl record`: demonstrations in the replay's on-disk format, for ``robo-rl train replay.demo_dir=DIR``.

    robo-rl record task=arm/reach source=scripted episodes=20 out=demos/reach
    robo-rl record task=arm/push source=keyboard episodes=10 out=demos/push operator=alice
    robo-rl record task=arm/reach source=spacemouse hardware=twin episodes=10 out=demos/reach-twin
    robo-rl record task=arm/reach source=ros ros.topic=/spacenav/twist hardware=real hardware.domain_id=7 out=...

An episode is run to its end (the env's termination or time limit, or the operator's end key)
and kept if it succeeded (``info["success"]`` at any step) or ``keep_failed=true``; a kept
episode is appended to the replay chunks and flushed when it ends, then its facts (success,
source, operator, return, length, start seed) are added to ``demos.json`` beside the chunks
(written atomically). Recording stops at ``episodes`` kept episodes, after ``max_attempts``
tries, or at the operator's quit key.

Crash safety: a killed recording loses at most the episode in progress; running the same command
again continues with the next attempt (its start seed continues the same stream), and a larger
``episodes=`` adds more to a finished recording. Before an episode's slots are written its facts
are noted as ``pending`` in demos.json, so a kill between the flush and the demos.json update
neither loses nor repeats it. An ``out`` holding anything else (another task or task settings,
other spaces, a directory that is not a recording) is refused and left untouched.

Episode starts: attempt a starts from ``episode_seed(seed, DEMOS, 1 + a)`` (robo_rl.seeding; index
0 of the DEMOS stream is a training run's demo sampler), disjoint from training and evaluation
starts, and from another recording's with a different seed.
"""
from __future__ import annotations

import dataclasses
import getpass
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from omegaconf import MISSING, DictConfig, OmegaConf

from robo_rl.atomic import write_atomically
from robo_rl.envs.config import EnvConfig
from robo_rl.hardware.config import RobotEnvConfig
from robo_rl.loops.pacing import ControlPacer
from robo_rl.record.ros_teleop import RosTeleopConfig
from robo_rl.record.spacemouse import SpaceMouseConfig
from robo_rl.record.teleop import (DISCARD, END, QUIT, ActionLayout, DeviceTeleop, KeyboardConfig, KeyboardTeleop,
                                   KeyReader, MotionDevice, TeleopError)
from robo_rl.replay.storage import ReplayDataError
from robo_rl.seeding import DEMOS, episode_seed

log = logging.getLogger("robo_rl")

SCRIPTED, KEYBOARD, SPACEMOUSE, ROS = "scripted", "keyboard", "spacemouse", "ros"
SOURCES = (SCRIPTED, KEYBOARD, SPACEMOUSE, ROS)
TELEOP_SOURCES = (KEYBOARD, SPACEMOUSE, ROS)
ARM_PREFIX = "arm/"
DEMOS_FILE = "demos.json"
DEMOS_FORMAT = "robo_rl-demos"
DEMOS_FORMAT_VERSION = 1
SIMULATION = "sim"
DEFAULT_ROS_DOMAIN = 0
DEMO_SEED_OFFSET = 1  # DEMOS stream index 0 seeds a training run's demo sampler; attempt a uses 1 + a
# The recorder's in-memory ring only has to hold the chunk being written (chunks are addressed
# by global slot, so the ring may wrap); the stored capacity is raised to the data's size instead.
RING_CHUNKS = 2


class RecordError(ReplayDataError):
    """The out directory or a recorded episode cannot be used; nothing was changed."""


@dataclass
class RecordRunConfig:
    """`robo-rl record`: configs/record.yaml."""
    task: EnvConfig = MISSING
    out: str = MISSING                   # the demo directory (a stopped or finished recording there is continued)
    source: str = SCRIPTED               # scripted | keyboard | spacemouse | ros
    episodes: int = 10                   # kept episodes to reach (in all, with those already in out)
    keep_failed: bool = False            # also keep episodes without success (their flag says so)
    max_attempts: int = 1000             # tries in all (kept, failed, discarded) before giving up
    operator: str | None = None          # who recorded (demos.json); null: the login user
    seed: int = 0                        # episode starts (robo_rl.seeding DEMOS stream)
    hardware: RobotEnvConfig | None = None  # hardware=twin|real: the arm over ROS 2 (the env client paces it)
    pace: bool = True                    # teleop in simulation: step on the task's 1 / control_hz grid
    stiffness_action: float = 0.0        # teleop: the stiffness entry of variable-impedance tasks (-1 soft .. 1 stiff)
    gripper_start: float = 1.0           # teleop: gripper command at each episode start (-1 closed .. 1 open)
    chunk_size: int = 1000               # slots per chunk file
    progress: bool = True                # tqdm bar (scripted)
    keyboard: KeyboardConfig = field(default_factory=KeyboardConfig)
    spacemouse: SpaceMouseConfig = field(default_factory=SpaceMouseConfig)
    ros: RosTeleopConfig = field(default_factory=RosTeleopConfig)

    def __post_init__(self) -> None:
        from robo_rl.config_schema import _raise

        problems = []
        if self.source not in SOURCES:
            problems.append(f"source must be one of {', '.join(SOURCES)} (got {self.source})")
        for name in ("episodes", "max_attempts", "chunk_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.max_attempts < self.episodes:
            problems.append(f"max_attempts ({self.max_attempts}) must be >= episodes ({self.episodes})")
        if self.seed < 0:
            problems.append(f"seed must be >= 0 (got {self.seed})")
        for name in ("stiffness_action", "gripper_start"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be in [-1, 1] (an action entry; got {getattr(self, name)})")
        if self.operator is not None and not str(self.operator).strip():
            problems.append("operator must be a name or null (the login user)")
        task_name = getattr(self.task, "name", None)
        if isinstance(task_name, str) and not task_name.startswith(ARM_PREFIX):
            what = "the scripted policy of an arm task" if self.source == SCRIPTED else \
                "an arm task's end-effector action (translation, rotation, gripper)"
            problems.append(f"source={self.source} drives {what}; use task=arm/reach|push|peg_insert|contact_maze "
                            f"(got task={task_name})")
        if self.keyboard.hold_steps < 1:
            problems.append(f"keyboard.hold_steps must be >= 1 (got {self.keyboard.hold_steps})")
        if not 0.0 < self.keyboard.speed <= 1.0:
            problems.append(f"keyboard.speed must be in (0, 1] (got {self.keyboard.speed})")
        problems += self.spacemouse.problems() + self.ros.problems()
        _raise(problems)

    def operator_name(self) -> str:
        if self.operator:
            return str(self.operator)
        try:
            return getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (containers) and no USER/LOGNAME
            return "unknown"


@dataclass
class DemoInfo:
    """demos.json: what the recording holds and how it was made."""
    task: str
    settings: dict[str, Any]
    episodes: list[dict[str, Any]] = field(default_factory=list)  # facts of each kept episode, in slot order
    attempts: int = 0          # tries so far: the next one starts from seed index 1 + attempts
    failed: int = 0            # dropped: no success (keep_failed=false)
    discarded: int = 0         # dropped by the operator (discard key, or ended before a step)
    pending: dict[str, Any] | None = None  # the episode being written (see the module doc)
    format: str = DEMOS_FORMAT
    format_version: int = DEMOS_FORMAT_VERSION

    @property
    def successes(self) -> int:
        return sum(bool(e["success"]) for e in self.episodes)

    def summary(self) -> str:
        transitions = sum(e["length"] for e in self.episodes)
        returns = [e["return"] for e in self.episodes]
        mean = f", mean return {np.mean(returns):.2f}" if returns else ""
        return (f"{len(self.episodes)} episodes kept ({self.successes} successful, {transitions} transitions"
                f"{mean}) of {self.attempts} attempts; dropped: {self.failed} without success, "
                f"{self.discarded} discarded")


def write_demo_info(out: Path, info: DemoInfo) -> None:
    text = json.dumps(asdict(info), indent=2, sort_keys=True).encode()
    write_atomically(out / DEMOS_FILE, lambda handle: handle.write(text))


def read_demo_info(out: str | Path) -> DemoInfo:
    path = Path(out) / DEMOS_FILE
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise RecordError(f"{path} not found: {out} is not a demo recording") from None
    except (OSError, ValueError) as exc:
        raise RecordError(f"{path} is unreadable ({exc}); restore it from a copy") from exc
    if payload.get("format") != DEMOS_FORMAT or payload.get("format_version", 0) > DEMOS_FORMAT_VERSION:
        raise RecordError(f"{path} is not a robo_rl demo file of format version <= {DEMOS_FORMAT_VERSION}")
    known = {f.name for f in dataclasses.fields(DemoInfo)}
    return DemoInfo(**{key: value for key, value in payload.items() if key in known})


def task_settings(env_cfg: EnvConfig) -> dict[str, Any]:
    """The task settings a recording stores (and a training run's demos are checked against)."""
    settings = OmegaConf.to_container(OmegaConf.structured(env_cfg))
    settings.pop("seed", None)  # the run's seed, not a property of the data
    return settings


def demo_settings_mismatch(demo_dir: str | Path, env_cfg: EnvConfig) -> str | None:
    """Why demos recorded in ``demo_dir`` do not fit a run of ``env_cfg`` (another task, or task
    settings that change observations, actions or rewards: goal_obs_scale, pos_action_scale,
    reward_type ...), or None. Directories without demos.json (a replay dir) are not checked."""
    if not (Path(demo_dir) / DEMOS_FILE).exists():
        return None
    info = read_demo_info(demo_dir)
    if info.task != env_cfg.name:
        return f"{demo_dir} holds demos of {info.task}, this run trains {env_cfg.name}"
    recorded, wanted = info.settings.get("task", {}), task_settings(env_cfg)
    differing = sorted(_differences(recorded, wanted))
    if not differing:
        return None
    values = "; ".join(f"{key}: demos {_lookup(recorded, key)!r}, run {_lookup(wanted, key)!r}" for key in differing)
    return f"{demo_dir} was recorded with other task settings ({values})"


def demo_seed(seed: int, attempt: int) -> int:
    """The reset seed of attempt ``attempt`` (0, 1, ...) of a recording with ``seed``."""
    return episode_seed(seed, DEMOS, DEMO_SEED_OFFSET + attempt)


@dataclass
class Attempt:
    """One episode as it happened, held in memory until it is kept or dropped."""
    first_obs: Any
    steps: list[tuple] = field(default_factory=list)  # (action, reward, next_obs, terminated, truncated)
    success: bool = False
    event: str | None = None                           # END / DISCARD / QUIT from the operator

    @property
    def rewards(self) -> list[float]:
        return [float(step[1]) for step in self.steps]


# ----------------------------------------------------------------------------------------------
# Sources


Act = Callable[[Any], tuple[np.ndarray, "str | None"]]


def _scripted(env, task: str) -> Act:
    from robo_rl.offline.collect import scripted_policy

    policy = scripted_policy(env, task)
    return lambda obs: (policy(obs), None)


def _teleop_act(teleop) -> Act:
    def act(obs):
        command = teleop.command()
        return command.action, command.event
    return act


def _teleop(cfg: RecordRunConfig, env, keys: KeyReader | None, motion: MotionDevice | None,
            closers: list[Callable[[], None]]):
    """The source's teleop object (keys and motion device opened here unless injected)."""
    from robo_rl.record.teleop import TerminalKeys

    layout = ActionLayout.of_task(env.backend.task)
    if keys is None and (cfg.source == KEYBOARD or sys.stdin.isatty()):
        terminal = TerminalKeys()
        closers.append(terminal.close)
        keys = terminal
    if cfg.source == KEYBOARD:
        return KeyboardTeleop(keys, layout, cfg.keyboard, cfg.stiffness_action, cfg.gripper_start)
    if motion is None:
        if cfg.source == SPACEMOUSE:
            from robo_rl.record.spacemouse import open_spacemouse

            motion = open_spacemouse(cfg.spacemouse)
        else:
            from robo_rl.hardware.teleop import RosTeleop

            domain = cfg.ros.domain_id
            if domain is None:
                domain = cfg.hardware.domain_id if cfg.hardware is not None else DEFAULT_ROS_DOMAIN
            motion = RosTeleop(cfg.ros, domain)
        closers.append(motion.close)
    if hasattr(motion, "wait_for_first_message"):
        motion.wait_for_first_message()
    return DeviceTeleop(motion, layout, keys, cfg.stiffness_action, cfg.gripper_start)


# ----------------------------------------------------------------------------------------------
# The recording


def record(cfg: RecordRunConfig, keys: KeyReader | None = None, motion: MotionDevice | None = None) -> DemoInfo:
    """Record the demos ``cfg`` describes into ``cfg.out`` (continuing a recording there). ``keys``
    and ``motion`` replace the terminal and the SpaceMouse / ROS topic (tests, other front ends)."""
    from robo_rl.envs import make_env
    from robo_rl.replay import ReplayBuffer

    out = Path(cfg.out)
    env_cfg = dataclasses.replace(cfg.task, seed=cfg.seed)
    settings = {"task": task_settings(env_cfg), "seed": cfg.seed}
    existing = _check_out(out, cfg.task.name, settings)  # before the env: a wrong out costs nothing
    env = make_env(env_cfg, seed=cfg.seed, hardware=cfg.hardware)
    closers: list[Callable[[], None]] = [env.close]
    try:
        _check_spaces(out, env)
        if cfg.source == SCRIPTED:
            act, teleop, pacer = _scripted(env, cfg.task.name), None, None
        else:  # devices before the directory: a missing one leaves no files behind
            teleop = _teleop(cfg, env, keys, motion, closers)
            act = _teleop_act(teleop)
            period = env.backend.control_timestep * env_cfg.action_repeat
            # The ROS env client waits for the policy period itself; a simulation is paced here.
            pacer = ControlPacer(period) if cfg.pace and cfg.hardware is None else None
        info = existing or DemoInfo(task=cfg.task.name, settings=settings)
        buffer = ReplayBuffer(env.observation_space, env.action_space, capacity=RING_CHUNKS * cfg.chunk_size + 1,
                              frame_stack=env_cfg.frame_stack, directory=out, chunk_size=cfg.chunk_size)
        if existing is not None:
            _reconcile(out, buffer, info)
        write_demo_info(out, info)
        if len(info.episodes) >= cfg.episodes:
            print(f"robo-rl record: {out} already holds {len(info.episodes)} episodes (episodes={cfg.episodes}); "
                  f"nothing to record. Raise episodes= to add more.", file=sys.stderr, flush=True)
            return info
        if teleop is not None:
            print(f"robo-rl record: {cfg.source} -> {out} ({cfg.task.name}, {1 / period:g} Hz); {teleop.help}",
                  file=sys.stderr, flush=True)
        _record_episodes(cfg, env, act, teleop, pacer, buffer, info, out)
        return info
    finally:
        for close in reversed(closers):
            close()


def _check_out(out: Path, task: str, settings: dict) -> DemoInfo | None:
    """None for a new recording; the info of the recording in ``out`` to continue, or a RecordError."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise RecordError(f"out={out} is a file; choose a directory path (nothing was changed)")
    if not any(out.iterdir()):
        return None
    if not (out / DEMOS_FILE).exists():
        raise RecordError(f"{out} exists and is not a demo recording (no {DEMOS_FILE}); choose a new out= path "
                          f"(nothing was changed)")
    info = read_demo_info(out)
    if info.task != task:
        raise RecordError(f"{out} holds demos of task {info.task}, not {task}; choose a new out= path for {task} "
                          f"(nothing was changed)")
    if info.settings != settings:
        differing = sorted(_differences(info.settings, settings))
        raise RecordError(f"{out} holds demos recorded with other settings ({', '.join(differing)} differ: "
                          f"{ {k: _lookup(info.settings, k) for k in differing} }); continue it with those or "
                          f"choose a new out= path (nothing was changed)")
    return info


def _differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for key in sorted(set(a) | set(b)):
            found += _differences(a.get(key), b.get(key), f"{prefix}{key}.")
        return found
    return [] if a == b else [prefix.rstrip(".")]


def _lookup(tree: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def _check_spaces(out: Path, env) -> None:
    from robo_rl.replay import storage

    metadata = storage.read_metadata(out) if out.is_dir() else None
    if metadata is None:
        return
    for name, space in (("observation_space", env.observation_space), ("action_space", env.action_space)):
        if metadata[name] != storage.space_to_spec(space):
            raise RecordError(f"{out} holds demos with {name} {metadata[name]}, but this task's is "
                              f"{storage.space_to_spec(space)}; choose a new out= path (nothing was changed)")


def _reconcile(out: Path, buffer, info: DemoInfo) -> None:
    """Load the chunks and make demos.json agree with them (the pending episode reached the disk or not)."""
    from robo_rl.offline.dataset import read_episodes
    from robo_rl.replay import storage

    buffer.load_from_disk()
    on_disk = len(list(read_episodes(out))) if storage.list_chunks(out) else 0
    # A pending episode that did not reach the disk is tried again from its own seed (attempts
    # was not advanced past it), as an unbroken recording would have kept it.
    pending, info.pending = info.pending, None
    if pending is not None and on_disk == len(info.episodes) + 1:
        info.episodes.append(pending)  # killed after its flush, before demos.json said so
        info.attempts = max(info.attempts, pending["attempt"] + 1)
    if on_disk != len(info.episodes):
        raise RecordError(f"{out} holds {on_disk} complete episodes but {DEMOS_FILE} lists {len(info.episodes)}; "
                          f"the directory was changed outside robo-rl record. Record into a new out= path")
    print(f"robo-rl record: continuing {out} after {len(info.episodes)} episodes ({info.attempts} attempts)",
          file=sys.stderr, flush=True)


def _run_attempt(env, act: Act, seed: int, pacer: ControlPacer | None) -> Attempt:
    obs, _ = env.reset(seed=seed)
    attempt = Attempt(first_obs=obs)
    if pacer is not None:
        pacer.restart()
    while True:
        if pacer is not None:
            pacer.wait()
        action, event = act(obs)
        if event is not None:
            attempt.event = event
            if event in (END, QUIT) and attempt.steps:
                # the operator ended it: a time limit of their choosing, so the last step bootstraps
                attempt.steps[-1] = (*attempt.steps[-1][:4], True)
            return attempt
        action = np.asarray(action, np.float32)
        if not np.all(np.isfinite(action)):
            raise RecordError(f"the source produced a non-finite action {action}; the episodes before this one "
                              f"are kept")
        next_obs, reward, terminated, truncated, info = env.step(action)
        attempt.steps.append((action, float(reward), next_obs, bool(terminated), bool(truncated)))
        attempt.success = attempt.success or bool(info.get("success", False))
        obs = next_obs
        if terminated or truncated:
            return attempt


def _record_episodes(cfg: RecordRunConfig, env, act: Act, teleop, pacer: ControlPacer | None, buffer, info: DemoInfo,
                     out: Path) -> None:
    from tqdm import tqdm

    operator = cfg.operator_name()
    environment = SIMULATION if cfg.hardware is None else cfg.hardware.kind
    bar = tqdm(total=cfg.episodes, initial=len(info.episodes), unit="episode", desc=f"record {cfg.source}",
               dynamic_ncols=True, disable=not (cfg.progress and cfg.source == SCRIPTED))
    try:
        while len(info.episodes) < cfg.episodes:
            if info.attempts >= cfg.max_attempts:
                print(f"robo-rl record: stopped after max_attempts={cfg.max_attempts} attempts with "
                      f"{len(info.episodes)} of {cfg.episodes} episodes kept; raise max_attempts to try more",
                      file=sys.stderr, flush=True)
                return
            index = info.attempts
            seed = demo_seed(cfg.seed, index)
            if teleop is not None:
                teleop.begin_episode()
            attempt = _run_attempt(env, act, seed, pacer)
            if attempt.event == QUIT and not attempt.steps:
                return  # quit between episodes: no try made, the seed is the next session's
            if attempt.event == DISCARD or not attempt.steps:
                info.discarded += 1
                verdict = "discarded"
            elif attempt.success or cfg.keep_failed:
                facts = {"index": len(info.episodes), "attempt": index, "seed": seed, "success": attempt.success,
                         "source": cfg.source, "operator": operator, "return": float(np.sum(attempt.rewards)),
                         "length": len(attempt.steps), "first_slot": buffer.num_slots_written, "env": environment,
                         "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
                _write_episode(out, buffer, info, attempt, facts)
                verdict = "kept"
            else:
                info.failed += 1
                verdict = "dropped (no success)"
            info.attempts = index + 1
            write_demo_info(out, info)
            if teleop is None:
                bar.update(int(verdict == "kept"))
                bar.set_postfix(attempts=info.attempts, refresh=False)
            else:
                print(f"episode {index}: {verdict}, success={attempt.success}, return "
                      f"{np.sum(attempt.rewards):.2f}, {len(attempt.steps)} steps; {len(info.episodes)}/{cfg.episodes}"
                      f" kept", file=sys.stderr, flush=True)
            if attempt.event == QUIT:
                return
    finally:
        bar.close()


def _write_episode(out: Path, buffer, info: DemoInfo, attempt: Attempt, facts: dict) -> None:
    """Append one kept episode: facts noted as pending, slots added and flushed, capacity raised,
    then the facts listed (each step durable before the next)."""
    from robo_rl.replay import storage

    info.pending = facts
    write_demo_info(out, info)
    buffer.reset(attempt.first_obs)
    for step in attempt.steps:
        buffer.add(*step)
    buffer.flush()
    # ReplayBuffer.load (replay.demo_dir) holds `capacity` slots: make it hold every one written
    metadata = storage.read_metadata(out)
    needed = buffer.num_slots_written + buffer.chunk_size
    if metadata["capacity"] < needed:
        storage.write_metadata(out, {**metadata, "capacity": needed})
    info.episodes.append(facts)
    info.pending = None


def compose_record_config(overrides: list[str] | tuple[str, ...] = ()) -> RecordRunConfig:
    """The validated RecordRunConfig `robo-rl record <overrides>` would run (tests, notebooks)."""
    from hydra import compose, initialize_config_dir

    from robo_rl.cli import config_dir
    from robo_rl.config_schema import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return OmegaConf.to_object(compose(config_name="record", overrides=list(overrides)))


def run_record(cfg: DictConfig) -> str:
    """The CLI entry: validate, record, and the report."""
    record_cfg = OmegaConf.to_object(cfg)  # RecordRunConfig's checks
    info = record(record_cfg)
    return (f"robo_rl record: {Path(record_cfg.out)}\n  {info.summary()}\n  train with it: robo-rl train "
            f"task={record_cfg.task.name} replay.demo_dir={record_cfg.out}")


__all__ = ["RecordRunConfig", "DemoInfo", "RecordError", "TeleopError", "record", "run_record", "read_demo_info",
           "compose_record_config", "demo_seed", "SOURCES", "DEMOS_FILE"]
