"""`EnvConfig`: the task settings that configs/task/*.yaml mirror (Hydra passes them as kwargs)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional

from omegaconf import MISSING

from robo_rl.config_utils import check_keys
from robo_rl.envs.options import OPTIONS_PATH, plain

OBS_TYPES = ("state", "pixels", "pixels_state")
RENDER_QUALITIES = ("fast", "default")
# Below this the DrQ-v2 encoder (4 3x3 convs, first stride 2) has almost nothing left to see.
MIN_IMAGE_SIZE = 16


@dataclass
class EnvConfig:
    """What to build and how to observe it.

    name: `dmc/<domain>_<task>`, `gym/<gymnasium id>` or `arm/<task>` (see `list_tasks()`).
    obs_type: `state` (float32 vector), `pixels` (uint8 C x H x W, `frame_stack` frames stacked
        on the channel axis) or `pixels_state` (a dict of both).
    action_repeat: simulator steps per agent step (rewards summed, stops at the episode end).
    frame_stack: frames per pixel observation (naive stacking: the first frame repeated at reset).
    image_size: side of the square pixel observation (84 as in DrQ-v2).
    camera: camera id or name; None = the task default (dm_control: 2 for quadruped, else 0, as
        in DrQ-v2; gymnasium: the model's `track` camera when it has one).
    seed: seed of the first reset (and of `action_space.sample()`); `make_env(seed=)` overrides it.
    max_episode_steps: time limit in simulator steps (before action repeat); None = the backend's
        own (1000 for most dm_control suite tasks, the registered limit for gymnasium).
    video_size: side of the frames `render_frame()` returns by default (eval videos).
    render_quality: `fast` turns off multi-sample anti-aliasing, shadows and reflections
        (on a CPU/Mesa renderer an 84x84 pixel step takes 3-5 ms instead of 50-65 ms);
        `default` keeps the model's own visual settings, e.g. to match published pixel results.
    options: backend-specific settings, checked when the env is built (unknown keys and wrong
        types are errors naming `task.options.<key>`):
        arm/  the fields of the task's Config dataclass (robo_rl.tasks, e.g. energy_tank,
              variable_impedance, reward_type, episode_steps) with nested mappings for
              impedance / tank / safety; image_size and camera are set above, not here.
        gym/  keyword arguments of the env's constructor (gymnasium.make kwargs, e.g.
              ctrl_cost_weight, reset_noise_scale); rendering kwargs are rejected.
        dmc/  `task_kwargs` (the suite task factory's arguments other than time_limit/random,
              e.g. fully_observable) and `environment_kwargs` (control_timestep or n_sub_steps),
              as for dm_control.suite.load.
        Stored as plain dicts/lists (YAML data).

    Field types are OmegaConf-compatible (the class doubles as a structured-config schema);
    `name` is required (MISSING until set) and the runtime checks live in __post_init__.
    """

    name: str = MISSING
    obs_type: str = "state"
    action_repeat: int = 1
    frame_stack: int = 3
    image_size: int = 84
    camera: Any = None  # int | str | None, checked in __post_init__
    seed: int = 0
    max_episode_steps: Optional[int] = None
    video_size: int = 256
    render_quality: str = "fast"
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name == MISSING:
            raise ValueError("EnvConfig.name is required, e.g. 'dmc/cartpole_swingup' "
                             "(the task config's `name`); see robo_rl.envs.list_tasks().")
        if not isinstance(self.name, str) or "/" not in self.name:
            raise ValueError(
                f"EnvConfig.name={self.name!r} must look like 'dmc/<domain>_<task>', "
                "'gym/<gymnasium id>' or 'arm/<task>'; see robo_rl.envs.list_tasks().")
        if self.obs_type not in OBS_TYPES:
            raise ValueError(f"EnvConfig.obs_type={self.obs_type!r} is not one of {OBS_TYPES}.")
        _require_int_at_least("action_repeat", self.action_repeat, 1)
        _require_int_at_least("frame_stack", self.frame_stack, 1)
        _require_int_at_least("image_size", self.image_size, MIN_IMAGE_SIZE)
        _require_int_at_least("video_size", self.video_size, MIN_IMAGE_SIZE)
        _require_int_at_least("seed", self.seed, 0)
        if self.max_episode_steps is not None:
            _require_int_at_least("max_episode_steps", self.max_episode_steps, 1)
        if self.render_quality not in RENDER_QUALITIES:
            raise ValueError(
                f"EnvConfig.render_quality={self.render_quality!r} is not one of "
                f"{RENDER_QUALITIES}.")
        if self.camera is not None and not isinstance(self.camera, (int, str)):
            raise ValueError(
                f"EnvConfig.camera={self.camera!r} must be a camera id (int), a camera name (str) "
                "or None for the task default.")
        if self.options is None:
            self.options = {}
        if not isinstance(self.options, Mapping) or not all(
                isinstance(key, str) for key in self.options):
            raise ValueError(f"EnvConfig.options={self.options!r} must be a mapping with string "
                             f"keys ({OPTIONS_PATH}.<key>: value).")
        self.options = plain(self.options)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "EnvConfig":
        """Build from a config mapping, naming any key that is not a field (typos in task yaml)."""
        check_keys(values, [f.name for f in dataclasses.fields(cls)], "task (EnvConfig)")
        return cls(**dict(values))


def _require_int_at_least(field: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"EnvConfig.{field}={value!r} must be an integer >= {minimum}.")
