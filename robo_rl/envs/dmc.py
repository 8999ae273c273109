"""dm_control suite tasks (`dmc/<domain>_<task>`) as a `Backend`.

The step is dm_control's own `control.Environment.step` written out over the public Task/Physics
API, so that the time limit lives in RoboEnv (reported as truncation) and a saved state can be
restored mid-episode without dm_control's private step counters.

EnvConfig.options are forwarded as dm_control.suite.load's two mappings (`dmc_load_kwargs`):
    task_kwargs: the task factory's own arguments (e.g. fully_observable for manipulator and
        stacker, num_poles for cartpole_three_poles), checked against its signature and the
        type of each default; time_limit (use max_episode_steps) and random (use seed) are
        set by robo_rl;
    environment_kwargs: control_timestep (s) or n_sub_steps (physics steps per control step).
"""
from __future__ import annotations

import functools
import importlib
import inspect
import math
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from dm_control import suite
from dm_control.mujoco import engine
from dm_control.rl import control

from robo_rl.envs.config import EnvConfig
from robo_rl.envs.core import SimulatorBackend, single_frame_space
from robo_rl.envs.options import OPTIONS_PATH, check_keys, construct, convert, default_typed
from robo_rl.envs.rendering import (ensure_offscreen_buffer, renderer_errors,
                                    set_fast_render_quality)

PREFIX = "dmc/"
# Observation camera per domain when EnvConfig.camera is None (DrQ-v2: quadruped 2, others 0).
DEFAULT_CAMERA_BY_DOMAIN = {"quadruped": 2}
DEFAULT_CAMERA = 0
FAST_RENDER_FLAGS = {"shadow": False, "reflection": False}
# Full integration state: time, qpos, qvel, act, warm start, ctrl, applied forces, mocap, ...
PHYSICS_STATE = int(mujoco.mjtState.mjSTATE_INTEGRATION)
# Model fields that suite tasks rewrite when an episode starts (targets, terrain, colours); they
# are part of the simulator state for an exact restore.
TASK_MODEL_FIELDS = ("body_pos", "body_quat", "geom_pos", "geom_quat", "geom_size", "geom_rgba",
                     "site_pos", "site_quat", "site_size", "site_rgba", "mat_rgba", "dof_damping",
                     "wrap_prm", "hfield_data")


@functools.cache
def task_table() -> dict[str, tuple[str, str]]:
    """`dmc/<domain>_<task>` -> (domain, task); domains may contain '_' (ball_in_cup)."""
    return {f"{PREFIX}{domain}_{task}": (domain, task) for domain, task in suite.ALL_TASKS}


def default_step_limit(domain: str, task: str, control_timestep: float) -> int | None:
    """The suite's default episode length in control steps (1000 for most tasks).

    dm_control ends an episode once step_count >= time_limit / control_timestep; the limit is the
    `time_limit` default of the task's factory function.
    """
    factory = importlib.import_module(f"dm_control.suite.{domain}").SUITE[task]
    parameter = inspect.signature(factory).parameters.get("time_limit")
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    if math.isinf(parameter.default):
        return None
    return math.ceil(parameter.default / control_timestep)


OPTION_GROUPS = ("task_kwargs", "environment_kwargs")
# Factory arguments robo_rl sets itself, with where to set them instead.
RESERVED_TASK_KWARGS = {
    "time_limit": "the episode length is task.max_episode_steps (simulator steps)",
    "random": "the task RNG is seeded from task.seed / the run seed",
    "environment_kwargs": "give it as task.options.environment_kwargs"}
# control.Environment arguments that the robo_rl step honours (it reimplements the step, so
# legacy_step / flat_observation / time_limit would have no or a different effect).
ENVIRONMENT_KWARGS = {"control_timestep": float, "n_sub_steps": int}


def dmc_load_kwargs(name: str, options: dict) -> dict:
    """`task_kwargs` and `environment_kwargs` for suite.load from EnvConfig.options."""
    domain, task = task_table()[name]
    check_keys(options, OPTION_GROUPS, OPTIONS_PATH)
    factory = importlib.import_module(f"dm_control.suite.{domain}").SUITE[task]
    parameters = {key: param for key, param in inspect.signature(factory).parameters.items()
                  if key not in RESERVED_TASK_KWARGS}
    where = f"{OPTIONS_PATH}.task_kwargs"
    task_kwargs = convert(dict[str, Any], options.get("task_kwargs", {}), where)
    check_keys(task_kwargs, list(parameters), f"{where} ({name})", hints=RESERVED_TASK_KWARGS)
    task_kwargs = {key: convert(default_typed(parameters[key].default), value, f"{where}.{key}")
                   for key, value in task_kwargs.items()}
    where = f"{OPTIONS_PATH}.environment_kwargs"
    environment_kwargs = convert(dict[str, Any], options.get("environment_kwargs", {}), where)
    check_keys(environment_kwargs, list(ENVIRONMENT_KWARGS), where)
    environment_kwargs = {key: convert(ENVIRONMENT_KWARGS[key], value, f"{where}.{key}")
                          for key, value in environment_kwargs.items()}
    for key, value in environment_kwargs.items():
        if value <= 0:
            raise ValueError(f"{where}.{key}={value!r} must be > 0.")
    return {"task_kwargs": task_kwargs, "environment_kwargs": environment_kwargs or None}


class DMCBackend(SimulatorBackend):
    def __init__(self, name: str, cfg: EnvConfig, seed: int) -> None:
        super().__init__(cfg.obs_type, cfg.image_size)
        domain, task = task_table()[name]
        self._name = name
        load_kwargs = dmc_load_kwargs(name, cfg.options)
        self._env = construct(lambda: suite.load(
            domain, task, task_kwargs={**load_kwargs["task_kwargs"], "random": seed},
            environment_kwargs=load_kwargs["environment_kwargs"]), f"{name} {OPTIONS_PATH}")
        self._physics = self._env.physics
        self._task = self._env.task
        self._n_sub_steps = control.compute_n_steps(self._env.control_timestep(),
                                                    self._physics.timestep())
        self.control_timestep = self._env.control_timestep()
        self.default_max_episode_steps = default_step_limit(domain, task, self.control_timestep)

        observation_spec = self._env.observation_spec()
        self._obs_keys = list(observation_spec)  # fixed flattening order: the task's own
        state_dim = sum(int(np.prod(spec.shape)) for spec in observation_spec.values())
        state_space = gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)
        self.observation_space = single_frame_space(cfg.obs_type, state_space, cfg.image_size)
        action_spec = self._env.action_spec()
        self.action_space = gym.spaces.Box(action_spec.minimum.astype(np.float32),
                                           action_spec.maximum.astype(np.float32),
                                           action_spec.shape, np.float32)

        model = self._physics.model
        self._camera = self._resolve_camera(
            DEFAULT_CAMERA_BY_DOMAIN.get(domain, DEFAULT_CAMERA) if cfg.camera is None
            else cfg.camera)
        if cfg.render_quality == "fast":
            set_fast_render_quality(model)
        self._render_flags = FAST_RENDER_FLAGS if cfg.render_quality == "fast" else None
        # dm_control shares one framebuffer per physics, made at the first render: size it now.
        ensure_offscreen_buffer(model, max(cfg.image_size, cfg.video_size),
                                max(cfg.image_size, cfg.video_size))
        self._cameras: dict[tuple[int, int], engine.Camera] = {}
        self._state_obs = np.zeros(state_dim, np.float32)

    def _resolve_camera(self, camera: int | str) -> int:
        model = self._physics.model.ptr
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(model.ncam)]
        camera_id = (mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
                     if isinstance(camera, str) else camera)
        if not -1 <= camera_id < model.ncam or (isinstance(camera, str) and camera_id == -1):
            raise ValueError(f"{self._name}: camera {camera!r} does not exist; use -1 (free "
                             f"camera), an id below {model.ncam} or one of the names {names}.")
        return camera_id

    def _flatten(self, observation) -> np.ndarray:
        parts = [np.asarray(observation[key], dtype=np.float64).ravel() for key in self._obs_keys]
        return np.concatenate(parts).astype(np.float32)

    def reset(self, seed: int | None) -> dict:
        if seed is not None:
            self._task.random.seed(seed)
        self._state_obs = self._flatten(self._env.reset().observation)
        return {}

    def step(self, action: np.ndarray) -> tuple[float, bool, bool, dict]:
        self._task.before_step(action, self._physics)
        self._physics.step(self._n_sub_steps)
        self._task.after_step(self._physics)
        reward = self._task.get_reward(self._physics)
        self._state_obs = self._flatten(self._task.get_observation(self._physics))
        # A task ends an episode by returning a discount: 0 = terminal state (no bootstrap);
        # anything else ends it without making the state terminal, i.e. a truncation.
        discount = self._task.get_termination(self._physics)
        terminated = discount is not None and discount == 0
        truncated = discount is not None and discount != 0
        return float(reward), terminated, truncated, {}

    def state_observation(self) -> np.ndarray:
        return self._state_obs  # RoboEnv copies it into the agent's observation

    def render(self, height: int, width: int) -> np.ndarray:
        buffer = self._physics.model.vis.global_
        if height > buffer.offheight or width > buffer.offwidth:
            raise ValueError(f"{self._name}: a {height}x{width} frame does not fit the "
                             f"{buffer.offheight}x{buffer.offwidth} offscreen buffer; raise "
                             "EnvConfig.video_size to the largest frame side you need.")
        camera = self._cameras.get((height, width))
        if camera is None:
            with renderer_errors(self._name):
                camera = engine.Camera(self._physics, height, width, camera_id=self._camera)
            self._cameras[(height, width)] = camera
        # The camera reuses its buffer and returns it flipped: copy into a fresh array.
        return np.ascontiguousarray(camera.render(render_flag_overrides=self._render_flags))

    def get_state(self) -> dict:
        model = self._physics.model
        return {
            "physics": self._physics.get_state(sig=PHYSICS_STATE),
            "model": {field: np.array(getattr(model, field)) for field in TASK_MODEL_FIELDS},
            "task_random": self._task.random.get_state(),
            "state_obs": self._state_obs.copy(),
        }

    def set_state(self, state: dict) -> None:
        model = self._physics.model
        terrain_changed = not np.array_equal(model.hfield_data, state["model"]["hfield_data"])
        # reset_context recomputes derived quantities (mj_forward) on exit, which the legacy
        # dm_control step relies on.
        with self._physics.reset_context():
            for field, value in state["model"].items():
                getattr(model, field)[...] = value
            self._physics.set_state(np.asarray(state["physics"]), sig=PHYSICS_STATE)
        self._task.random.set_state(state["task_random"])
        self._state_obs = state["state_obs"].copy()
        if terrain_changed and self._cameras:
            self._upload_heightfields()

    def _upload_heightfields(self) -> None:
        """Send rewritten terrain to the GPU, as quadruped's initialize_episode does."""
        contexts = self._physics.contexts
        with contexts.gl.make_current() as gl:
            for hfield_id in range(self._physics.model.nhfield):
                gl.call(mujoco.mjr_uploadHField, self._physics.model.ptr, contexts.mujoco.ptr,
                        hfield_id)

    def close(self) -> None:
        self._cameras.clear()
        self._physics.free()
