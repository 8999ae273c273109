"""gymnasium MuJoCo tasks (`gym/<id>`, e.g. gym/HalfCheetah-v5) as a `Backend`.

The raw MujocoEnv is used (no gymnasium wrappers); RoboEnv applies the registered time limit as a
truncation. Frames come from our own `mujoco.Renderer`s, one per frame size, because gymnasium's
renderer has one fixed size and its default free camera does not follow a running robot.

EnvConfig.options are keyword arguments of the env's constructor, as gymnasium.make(id, **kwargs)
takes them (e.g. ctrl_cost_weight, reset_noise_scale, xml_file), checked against its signature
and type hints (`gym_make_kwargs`). gymnasium's own rendering arguments are rejected: frames
come from robo_rl's renderers (task.camera / image_size / video_size); default_camera_config is
accepted (it places the free camera).
"""
from __future__ import annotations

import copy
import functools
import inspect
import typing

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
from gymnasium.envs.registration import load_env_creator

from robo_rl.envs.config import EnvConfig
from robo_rl.envs.core import SimulatorBackend, single_frame_space
from robo_rl.envs.options import OPTIONS_PATH, check_keys, construct, convert, default_typed
from robo_rl.envs.rendering import (ensure_offscreen_buffer, renderer_errors,
                                    set_fast_render_quality)

PREFIX = "gym/"
MUJOCO_ENTRY_POINT = "gymnasium.envs.mujoco"
# Camera when EnvConfig.camera is None: the model's tracking camera (locomotion models define
# one), else gymnasium's default free camera.
TRACKING_CAMERA = "track"
FREE_CAMERA = -1
# Full integration state: time, qpos, qvel, act, warm start, ctrl, applied forces, mocap, ...
PHYSICS_STATE = int(mujoco.mjtState.mjSTATE_INTEGRATION)
# Quantities mj_step leaves computed for the state *before* its last integration, which gymnasium
# envs read before stepping (Ant/Humanoid x velocity, Pusher/Reacher-v4 rewards) and the
# renderer draws. mj_forward would recompute them for the current state, so they are saved too.
STALE_DERIVED_FIELDS = ("xpos", "xquat", "xmat", "xipos", "ximat", "geom_xpos", "geom_xmat",
                        "site_xpos", "site_xmat", "cam_xpos", "cam_xmat", "light_xpos",
                        "light_xdir", "subtree_com", "cinert", "cvel", "cacc", "cfrc_int",
                        "cfrc_ext", "qfrc_actuator", "actuator_force", "actuator_length",
                        "sensordata", "ten_length", "ten_wrapadr", "ten_wrapnum", "wrap_obj",
                        "wrap_xpos", "flexvert_xpos")


@functools.cache
def task_names() -> tuple[str, ...]:
    """Registered gymnasium MuJoCo ids, as `gym/<id>`."""
    return tuple(f"{PREFIX}{env_id}" for env_id, spec in gym.registry.items()
                 if isinstance(spec.entry_point, str)
                 and spec.entry_point.startswith(MUJOCO_ENTRY_POINT))


# Constructor arguments with no effect here (robo_rl renders itself) or set elsewhere.
RESERVED_KWARGS = {key: "robo_rl renders with its own renderers; set task.camera / "
                   "task.image_size / task.video_size instead"
                   for key in ("render_mode", "width", "height", "camera_id", "camera_name",
                               "max_geom", "visual_options")}
RESERVED_KWARGS["max_episode_steps"] = "set task.max_episode_steps instead"


def gym_make_kwargs(name: str, options: dict) -> dict:
    """EnvConfig.options checked and converted as keyword arguments of the env's constructor."""
    env_id = name.removeprefix(PREFIX)
    creator = load_env_creator(gym.spec(env_id).entry_point)
    init = creator.__init__ if isinstance(creator, type) else creator
    parameters = {key: param for key, param in inspect.signature(init).parameters.items()
                  if key != "self" and key not in RESERVED_KWARGS
                  and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)}
    try:
        hints = typing.get_type_hints(init)
    except Exception:  # annotations that do not resolve: check against the defaults instead
        hints = {}
    check_keys(options, list(parameters), f"{OPTIONS_PATH} ({name} constructor arguments)",
               hints=RESERVED_KWARGS)
    return {key: convert(hints.get(key, default_typed(parameters[key].default)), value,
                         f"{OPTIONS_PATH}.{key}")
            for key, value in options.items()}


class GymMujocoBackend(SimulatorBackend):
    def __init__(self, name: str, cfg: EnvConfig, seed: int) -> None:
        super().__init__(cfg.obs_type, cfg.image_size)
        self._name = name
        env_id = name.removeprefix(PREFIX)
        kwargs = gym_make_kwargs(name, cfg.options)
        self._env = construct(lambda: gym.make(env_id, disable_env_checker=True, **kwargs),
                              f"{name} {OPTIONS_PATH}").unwrapped
        if not isinstance(self._env, MujocoEnv):
            raise ValueError(f"{name} is not a gymnasium MuJoCo env; robo_rl.envs supports the "
                             "ids listed by robo_rl.envs.list_tasks().")
        self._model, self._data = self._env.model, self._env.data
        self.default_max_episode_steps = gym.spec(env_id).max_episode_steps
        self.control_timestep = self._env.dt

        gym_obs = self._env.observation_space
        state_space = gym.spaces.Box(gym_obs.low.astype(np.float32),
                                     gym_obs.high.astype(np.float32), gym_obs.shape, np.float32)
        self.observation_space = single_frame_space(cfg.obs_type, state_space, cfg.image_size)
        self.action_space = self._env.action_space

        self._camera_id = self._resolve_camera(cfg.camera)
        self._free_camera_config = self._env.mujoco_renderer.default_cam_config or {}
        self._camera: mujoco.MjvCamera | int | None = None  # made at the first render
        self._fast_render = cfg.render_quality == "fast"
        if self._fast_render:
            set_fast_render_quality(self._model)
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._state_obs = np.zeros(state_space.shape, np.float32)

    def _resolve_camera(self, camera: int | str | None) -> int:
        names = [mujoco.mj_id2name(self._model, mujoco.mjtObj.mjOBJ_CAMERA, i)
                 for i in range(self._model.ncam)]
        if camera is None:
            return names.index(TRACKING_CAMERA) if TRACKING_CAMERA in names else FREE_CAMERA
        camera_id = names.index(camera) if camera in names else camera
        if isinstance(camera_id, str) or not FREE_CAMERA <= camera_id < self._model.ncam:
            raise ValueError(f"{self._name}: camera {camera!r} does not exist; use -1 (free "
                             f"camera), an id below {self._model.ncam} or one of {names}.")
        return camera_id

    def _make_camera(self) -> mujoco.MjvCamera | int:
        """A fixed camera id, or gymnasium's default free camera (same lookat/distance/config)."""
        if self._camera_id != FREE_CAMERA:
            return self._camera_id
        camera = mujoco.MjvCamera()
        camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        camera.fixedcamid = FREE_CAMERA
        camera.lookat[:] = np.median(self._data.geom_xpos, axis=0)
        camera.distance = self._model.stat.extent
        for key, value in self._free_camera_config.items():
            if isinstance(value, np.ndarray):
                getattr(camera, key)[:] = value
            else:
                setattr(camera, key, value)
        return camera

    def reset(self, seed: int | None) -> dict:
        obs, info = self._env.reset(seed=seed)
        self._state_obs = np.asarray(obs, dtype=np.float32)
        return info

    def step(self, action: np.ndarray) -> tuple[float, bool, bool, dict]:
        obs, reward, terminated, truncated, info = self._env.step(action)
        self._state_obs = np.asarray(obs, dtype=np.float32)
        return float(reward), bool(terminated), bool(truncated), info

    def state_observation(self) -> np.ndarray:
        return self._state_obs  # RoboEnv copies it into the agent's observation

    def render(self, height: int, width: int) -> np.ndarray:
        renderer = self._renderers.get((height, width))
        if renderer is None:
            ensure_offscreen_buffer(self._model, height, width)
            with renderer_errors(self._name):
                renderer = mujoco.Renderer(self._model, height, width)
            if self._fast_render:
                renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
                renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
            self._renderers[(height, width)] = renderer
        if self._camera is None:
            self._camera = self._make_camera()
        renderer.update_scene(self._data, camera=self._camera)
        return renderer.render()

    def get_state(self) -> dict:
        physics = np.empty(mujoco.mj_stateSize(self._model, PHYSICS_STATE), np.float64)
        mujoco.mj_getState(self._model, self._data, physics, PHYSICS_STATE)
        return {
            "physics": physics,
            "derived": {field: np.array(getattr(self._data, field))
                        for field in STALE_DERIVED_FIELDS},
            "np_random": copy.deepcopy(self._env.np_random.bit_generator.state),
            "state_obs": self._state_obs.copy(),
        }

    def set_state(self, state: dict) -> None:
        physics = np.asarray(state["physics"], dtype=np.float64)
        expected = mujoco.mj_stateSize(self._model, PHYSICS_STATE)
        if physics.shape != (expected,):
            raise ValueError(f"{self._name}: physics state has shape {physics.shape}, expected "
                             f"({expected},); was it saved from another task?")
        mujoco.mj_setState(self._model, self._data, physics, PHYSICS_STATE)
        mujoco.mj_forward(self._model, self._data)  # contacts etc. consistent with the state
        for field, value in state["derived"].items():
            getattr(self._data, field)[...] = value
        self._env.np_random.bit_generator.state = copy.deepcopy(state["np_random"])
        self._state_obs = state["state_obs"].copy()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        self._env.close()
