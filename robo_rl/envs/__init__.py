"""Environment factory: `make_env(EnvConfig(...))` -> a gymnasium env with the robo_rl conventions.

    from robo_rl.envs import make_env, EnvConfig
    env = make_env(EnvConfig(name="dmc/cheetah_run", obs_type="pixels", action_repeat=2), seed=0)

Names: `dmc/<domain>_<task>` (dm_control suite), `gym/<id>` (gymnasium MuJoCo), `arm/<task>`
(robo_rl.tasks). See robo_rl.envs.core for what every env does (action rescaling, repeat, time
limit as truncation, frame stacking, episode statistics, get_state/set_state, render_frame).
"""
# MuJoCo and dm_control read MUJOCO_GL when first imported: set it before anything imports them.
from robo_rl.envs.rendering import configure_mujoco_gl

configure_mujoco_gl()

import difflib  # noqa: E402
from typing import Any, Mapping  # noqa: E402

from robo_rl.envs.config import EnvConfig  # noqa: E402
from robo_rl.envs.core import Backend, RoboEnv, rescale_action  # noqa: E402

__all__ = ["EnvConfig", "RoboEnv", "Backend", "make_env", "list_tasks", "rescale_action"]

PREFIXES = ("dmc/", "gym/", "arm/")
CLOSE_MATCHES = 5  # suggestions in the unknown-task error


def list_tasks() -> list[str]:
    """Every task name make_env accepts (arm/ tasks only when robo_rl.tasks imports)."""
    from robo_rl.envs import arm, dmc, gym_mujoco

    return sorted(dmc.task_table()) + sorted(gym_mujoco.task_names()) + arm.task_names()


def make_env(cfg: EnvConfig | Mapping[str, Any], seed: int | None = None,
             hardware: Any = None) -> RoboEnv:
    """Build the env `cfg` names; `seed` (default cfg.seed) seeds its first reset. `hardware`
    (a robo_rl.hardware.config.RobotEnvConfig) runs an arm task over ROS 2 instead: the twin
    or a real arm (robo_rl.hardware, imported only then)."""
    if not isinstance(cfg, EnvConfig):
        cfg = EnvConfig.from_dict(cfg)
    seed = cfg.seed if seed is None else seed
    if hardware is not None:
        if not cfg.name.startswith("arm/"):
            raise ValueError(f"hardware={hardware.kind} drives a robot arm: use an arm/ task "
                             f"(got {cfg.name}) or hardware=none")
        from robo_rl.hardware.env_client import make_robot_env

        return make_robot_env(cfg, hardware, seed)
    return RoboEnv(_make_backend(cfg, seed), cfg, seed)


def _make_backend(cfg: EnvConfig, seed: int) -> Backend:
    name = cfg.name
    if name.startswith("dmc/"):
        from robo_rl.envs import dmc

        if name in dmc.task_table():
            return dmc.DMCBackend(name, cfg, seed)
    elif name.startswith("gym/"):
        from robo_rl.envs import gym_mujoco

        if name in gym_mujoco.task_names():
            return gym_mujoco.GymMujocoBackend(name, cfg, seed)
    elif name.startswith("arm/"):
        from robo_rl.envs import arm

        tasks = arm.import_tasks()  # a missing robo_rl.tasks is reported as such
        if name.removeprefix(arm.PREFIX) in tasks.TASKS:
            return arm.ArmBackend(name, cfg, seed)
    raise _unknown_task(name)


def _unknown_task(name: str) -> ValueError:
    valid = list_tasks()
    close = difflib.get_close_matches(name, valid, n=CLOSE_MATCHES)
    same_prefix = [task for task in valid if task.split("/")[0] == name.split("/")[0]]
    hint = f" Did you mean {close}?" if close else ""
    listing = same_prefix or valid
    return ValueError(
        f"Unknown task {name!r}.{hint} Names start with one of {list(PREFIXES)}; valid names "
        f"{'with this prefix ' if same_prefix else ''}are: {', '.join(listing)}.")
