"""Arm tasks (`arm/<task>`) from robo_rl.tasks as a `Backend`.

The task env builds its own observations for the requested obs_type (one frame); this backend
checks they follow the contract so RoboEnv can stack frames, and forwards state save/restore.
robo_rl.tasks is imported only when an arm task is requested.

EnvConfig.options are the fields of the task's Config dataclass (robo_rl.tasks, e.g.
ContactMazeConfig), checked and converted by `task_options` (nested mappings for impedance /
tank / safety, lists for tuples); image_size and camera come from EnvConfig itself.
configs/task/arm/*.yaml list every option with its default (scripts/gen_task_configs.py).
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np

from robo_rl.envs.config import EnvConfig
from robo_rl.envs.core import PIXELS_KEY, RGB_CHANNELS, STATE_KEY, Backend, single_frame_space
from robo_rl.envs.options import OPTIONS_PATH, construct, dataclass_values, yaml_data

PREFIX = "arm/"
TASKS_MODULE = "robo_rl.tasks"
# Config fields that EnvConfig sets for every backend, so they are not options.
ENV_CONFIG_FIELDS = {"image_size": "set task.image_size (EnvConfig.image_size) instead",
                     "camera": "set task.camera (EnvConfig.camera: front | wrist) instead"}


def import_tasks() -> ModuleType:
    """robo_rl.tasks with `make_task` and `TASKS`, or a RuntimeError saying what is missing."""
    try:
        tasks = importlib.import_module(TASKS_MODULE)
    except ImportError as error:
        raise RuntimeError(f"arm/ tasks need {TASKS_MODULE} (the repo's tasks/ folder, installed "
                           f"with `pip install -e .`), which failed to import: {error}") from error
    missing = [attr for attr in ("make_task", "TASKS") if not hasattr(tasks, attr)]
    if missing:
        raise RuntimeError(f"arm/ tasks need {TASKS_MODULE}.{' and '.join(missing)}, which "
                           f"{TASKS_MODULE} does not define (yet).")
    return tasks


def task_names() -> list[str]:
    """`arm/<task>` for every task robo_rl.tasks offers; empty when it cannot be imported."""
    try:
        tasks = import_tasks()
    except RuntimeError:
        return []
    return [f"{PREFIX}{task}" for task in tasks.TASKS]


def config_class(task: str) -> type:
    """The Config dataclass of arm task `task` (without the arm/ prefix)."""
    return import_tasks().task_config_class(task)


def task_options(task: str, options: dict[str, Any]) -> dict[str, Any]:
    """`options` checked and converted to the field types of the task's Config (make_task
    keyword arguments); a ValueError names the offending `task.options.<key>`."""
    return dataclass_values(config_class(task), options, OPTIONS_PATH, exclude=ENV_CONFIG_FIELDS)


def default_options(task: str) -> dict[str, Any]:
    """Every option of `task` with its default, as YAML data (what configs/task/arm lists)."""
    defaults = config_class(task)()
    return {f.name: yaml_data(getattr(defaults, f.name)) for f in dataclasses.fields(defaults)
            if f.name not in ENV_CONFIG_FIELDS}


class ArmBackend(Backend):
    def __init__(self, name: str, cfg: EnvConfig, seed: int) -> None:
        self._name = name
        self._obs_type = cfg.obs_type
        task = name.removeprefix(PREFIX)
        kwargs: dict[str, Any] = {**task_options(task, cfg.options), "obs_type": cfg.obs_type,
                                  "seed": seed, "image_size": cfg.image_size}
        if cfg.camera is not None:
            kwargs["camera"] = cfg.camera
        # The Config's and the task's own checks (e.g. reward_type, stiffness_range) name it.
        self._env = construct(lambda: import_tasks().make_task(task, **kwargs),
                              f"{name} {OPTIONS_PATH}")
        self.action_space = self._env.action_space
        self.observation_space = self._checked_space(self._env.observation_space, cfg)
        self.default_max_episode_steps = None  # the task truncates its own episodes
        # seconds per task step (0.1 s at the default 10 Hz policy rate): videos play at 1/dt fps
        self.control_timestep = float(self._env.dt)
        self._obs: Any = None

    def _checked_space(self, space: gym.Space, cfg: EnvConfig) -> gym.Space:
        """The contract's single-frame space, or a ValueError naming what the task returned."""
        frame_shape = (RGB_CHANNELS, cfg.image_size, cfg.image_size)

        def is_state(box: gym.Space) -> bool:
            return isinstance(box, gym.spaces.Box) and len(box.shape) == 1

        def is_frame(box: gym.Space) -> bool:
            return (isinstance(box, gym.spaces.Box) and box.shape == frame_shape
                    and box.dtype == np.uint8)

        if cfg.obs_type == "state":
            ok, state = is_state(space), space
        elif cfg.obs_type == "pixels":
            ok, state = is_frame(space), None
        else:
            ok = (isinstance(space, gym.spaces.Dict)
                  and set(space.spaces) == {PIXELS_KEY, STATE_KEY}
                  and is_frame(space[PIXELS_KEY]) and is_state(space[STATE_KEY]))
            state = space[STATE_KEY] if ok else None
        if not ok:
            raise ValueError(f"{self._name}: robo_rl.tasks returned observation space {space}, "
                             f"but obs_type={cfg.obs_type!r} needs a float state vector and/or "
                             f"uint8 channel-first frames of shape {frame_shape}.")
        state_space = (None if state is None else
                       gym.spaces.Box(-np.inf, np.inf, state.shape, np.float32))
        return single_frame_space(cfg.obs_type, state_space, cfg.image_size)

    def _convert(self, obs: Any) -> Any:
        if isinstance(obs, dict):
            return {PIXELS_KEY: np.asarray(obs[PIXELS_KEY], np.uint8),
                    STATE_KEY: np.asarray(obs[STATE_KEY], np.float32)}
        return np.asarray(obs, np.uint8 if self._obs_type == "pixels" else np.float32)

    def reset(self, seed: int | None) -> dict:
        obs, info = self._env.reset(seed=seed)
        self._obs = self._convert(obs)
        return info

    def step(self, action: np.ndarray) -> tuple[float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self._env.step(action)
        self._obs = self._convert(obs)
        return float(reward), bool(terminated), bool(truncated), info

    def observation(self) -> Any:
        return self._obs  # RoboEnv copies it into the agent's observation

    def render(self, height: int, width: int) -> np.ndarray:
        # The task keeps one renderer per frame size, so video frames taken between the
        # observation renders do not rebuild the observation's renderer.
        return np.asarray(self._env.render_frame(height, width), np.uint8)

    @property
    def task(self) -> Any:
        """The robo_rl.tasks env (its config, controller, tank and safety limits)."""
        return self._env

    def get_state(self) -> dict:
        return {"task": self._env.get_state(), "obs": copy.deepcopy(self._obs)}

    def set_state(self, state: dict) -> None:
        self._env.set_state(state["task"])
        self._obs = copy.deepcopy(state["obs"])

    def close(self) -> None:
        self._env.close()
