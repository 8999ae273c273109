"""MuJoCo arm tasks (Franka Panda, torque control through robo_rl.controllers' Cartesian
impedance law), gymnasium API. See docs/tasks.md.

    env = make_task("peg_insert", obs_type="state", seed=0, image_size=84, reward_type="sparse")
"""

from __future__ import annotations

import numpy as np

from robo_rl.tasks.base import ArmTask, ArmTaskConfig, config_from_kwargs
from robo_rl.tasks.contact_maze import ContactMaze, ContactMazeConfig
from robo_rl.tasks.peg_insert import PegInsert, PegInsertConfig
from robo_rl.tasks.push import Push, PushConfig
from robo_rl.tasks.reach import Reach, ReachConfig

TASKS = ("reach", "push", "peg_insert", "contact_maze")
_TASK_CLASSES: dict[str, type[ArmTask]] = {"reach": Reach, "push": Push,
                                          "peg_insert": PegInsert, "contact_maze": ContactMaze}


def make_task(name: str, obs_type: str = "state", seed: int | None = 0, image_size: int = 84,
              **kwargs) -> ArmTask:
    """Build a task by name; kwargs are fields of its Config dataclass (e.g. reward_type,
    energy_tank, variable_impedance, camera, episode_steps)."""
    if name not in _TASK_CLASSES:
        raise ValueError(f"unknown arm task {name!r}; valid tasks: {', '.join(TASKS)}")
    cls = _TASK_CLASSES[name]
    config = config_from_kwargs(cls.Config, name, {"image_size": image_size, **kwargs})
    return cls(config, obs_type=obs_type, seed=seed)


def task_config_class(name: str) -> type[ArmTaskConfig]:
    """The Config dataclass of task `name` (its fields are make_task's keyword arguments)."""
    if name not in _TASK_CLASSES:
        raise ValueError(f"unknown arm task {name!r}; valid tasks: {', '.join(TASKS)}")
    return _TASK_CLASSES[name].Config


def scripted_policy(env) -> np.ndarray:
    """Action of the task's scripted (privileged-state) policy for env's current state."""
    return env.unwrapped.scripted_action()


__all__ = ["TASKS", "make_task", "task_config_class", "scripted_policy", "ArmTask", "ArmTaskConfig", "Reach",
           "ReachConfig", "Push", "PushConfig", "PegInsert", "PegInsertConfig", "ContactMaze",
           "ContactMazeConfig"]
