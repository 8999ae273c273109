"""Pieces shared by the training loop and `robo-rl eval`: devices, threads, evaluation, space checks."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from gymnasium import spaces as gym_spaces
from omegaconf import DictConfig, OmegaConf

from robo_rl.envs import EnvConfig


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name} but CUDA is not available here; use device=cpu or device=auto")
    return device


# Small MLP updates stop scaling past a few threads; more just adds synchronisation cost.
MAX_DEFAULT_THREADS = 4


def set_threads(threads: int | None) -> int:
    n = int(threads) if threads else min(os.cpu_count() or 1, MAX_DEFAULT_THREADS)
    if n < 1:
        raise ValueError(f"threads must be >= 1 or null (got {threads})")
    torch.set_num_threads(n)
    return n


def env_config(task_cfg: DictConfig | dict, seed: int) -> EnvConfig:
    values = OmegaConf.to_container(task_cfg, resolve=True) if isinstance(task_cfg, DictConfig) else dict(task_cfg)
    return EnvConfig.from_dict({**values, "seed": seed})


def hardware_config(cfg: DictConfig):
    """The run's RobotEnvConfig (hardware=twin|real), or None (simulation)."""
    node = cfg.get("hardware") if isinstance(cfg, DictConfig) else None
    if node is None:
        return None
    from robo_rl.hardware.config import RobotEnvConfig

    values = OmegaConf.to_object(node) if isinstance(node, DictConfig) else node
    return values if isinstance(values, RobotEnvConfig) else RobotEnvConfig(**values)


def describe_spaces(observation_space: gym_spaces.Space, action_space: gym_spaces.Space) -> dict:
    """A plain-data description of the spaces, stored in checkpoints and compared on resume."""

    def box(space: gym_spaces.Space) -> dict:
        if isinstance(space, gym_spaces.Dict):
            return {key: box(sub) for key, sub in space.spaces.items()}
        return {"shape": list(space.shape), "dtype": str(space.dtype)}

    return {"observation": box(observation_space), "action": box(action_space)}


def spaces_mismatch(saved: dict, current: dict) -> str | None:
    for part in ("observation", "action"):
        if saved.get(part) != current.get(part):
            return f"{part}: checkpoint {saved.get(part)} vs config {current.get(part)}"
    return None


@dataclass
class EvalResult:
    returns: list[float]
    lengths: list[int]
    successes: list[float]
    frames: list[np.ndarray] = field(default_factory=list)
    video_fps: float = 30.0
    costs: list[float] = field(default_factory=list)   # per-episode sum of info["cost"], if reported

    @property
    def return_mean(self) -> float:
        return float(np.mean(self.returns))

    @property
    def return_std(self) -> float:
        return float(np.std(self.returns))

    def metrics(self) -> dict[str, float]:
        out = {"return_mean": self.return_mean, "return_std": self.return_std,
               "length_mean": float(np.mean(self.lengths)), "episodes": float(len(self.returns))}
        if self.successes:
            out["success_rate"] = float(np.mean(self.successes))
        if self.costs:
            out["cost_mean"] = float(np.mean(self.costs))
        return out


def evaluate(agent: Any, env: Any, episodes: int, record_video: bool = False, video_size: int = 256,
             deterministic: bool = True, seeds: Sequence[int] | None = None) -> EvalResult:
    """Run `episodes` episodes with the policy mean (reset seeds: ``seeds[i]``, or the env's own
    stream when None); record the first one when asked."""
    if seeds is not None and len(seeds) < episodes:
        raise ValueError(f"evaluate: {episodes} episodes need as many seeds, got {len(seeds)}")
    returns, lengths, successes, frames, costs = [], [], [], [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=None if seeds is None else int(seeds[i]))
        done, total, length, success, cost = False, 0.0, 0, None, None
        while not done:
            if record_video and i == 0:
                frames.append(env.render_frame(video_size))
            action = agent.act(obs, eval_mode=deterministic)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            length += 1
            done = terminated or truncated
            if "cost" in info:
                cost = (cost or 0.0) + float(info["cost"])
            if "success" in info:
                success = float(bool(info["success"])) if success is None else max(success, float(info["success"]))
        if record_video and i == 0:
            frames.append(env.render_frame(video_size))
        returns.append(total)
        lengths.append(length)
        if success is not None:
            successes.append(success)
        if cost is not None:
            costs.append(cost)
    fps = getattr(env, "video_fps", 30.0)
    return EvalResult(returns, lengths, successes, frames, video_fps=fps, costs=costs)
