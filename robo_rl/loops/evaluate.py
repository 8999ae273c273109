"""`robo-rl eval checkpoint=PATH`: rebuild env and agent from the checkpoint's own config and report returns."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig, OmegaConf

from robo_rl.agents import make_agent, upgrade_agent_config
from robo_rl.agents.constraint import constraint_config
from robo_rl.checkpoint import CheckpointError, load_checkpoint
from robo_rl.envs import make_env
from robo_rl.loops.common import describe_spaces, env_config, evaluate, resolve_device, set_threads, spaces_mismatch
from robo_rl.seeding import eval_seeds


def agent_from_checkpoint(payload: dict, ckpt_path: Path, env, device):
    """The checkpoint's agent, rebuilt from its own config, for `env` (spaces checked)."""
    run_cfg = OmegaConf.create(payload["config"])
    problem = spaces_mismatch(payload["spaces"], describe_spaces(env.observation_space, env.action_space))
    if problem:
        raise CheckpointError(f"{ckpt_path}: the task in its config no longer matches its spaces ({problem})")
    agent = make_agent(upgrade_agent_config(OmegaConf.to_container(run_cfg.agent, resolve=True)),
                       env.observation_space, env.action_space, device,
                       constraint=constraint_config(run_cfg.get("constraint")))
    agent.load_state_dict(payload["agent"])
    return agent


def run_eval(cfg: DictConfig) -> str:
    OmegaConf.to_object(cfg)  # EvalRunConfig's range checks
    ckpt_path = Path(cfg.checkpoint)
    payload = load_checkpoint(ckpt_path)
    device = resolve_device(cfg.device)
    set_threads(cfg.threads)
    run_cfg = OmegaConf.create(payload["config"])
    env = make_env(env_config(run_cfg.task, cfg.seed), seed=cfg.seed)
    agent = agent_from_checkpoint(payload, ckpt_path, env, device)
    result = evaluate(agent, env, cfg.episodes, record_video=cfg.video, video_size=cfg.video_size,
                      deterministic=cfg.deterministic, seeds=eval_seeds(cfg.seed, cfg.episodes))
    env.close()
    lines = [f"robo_rl eval: {ckpt_path} (step {payload['step']}, task {run_cfg.task.name}, agent {run_cfg.agent.name})",
             f"  return: {result.return_mean:.1f} +/- {result.return_std:.1f} over {cfg.episodes} episodes "
             f"(min {np.min(result.returns):.1f}, max {np.max(result.returns):.1f})"]
    if result.successes:
        lines.append(f"  success rate: {np.mean(result.successes):.2f}")
    if cfg.video:
        from robo_rl.video import write_mp4

        video_path = Path(cfg.video_path) if cfg.video_path else \
            ckpt_path.resolve().parent.parent / "videos" / f"eval_checkpoint_{payload['step']:08d}.mp4"
        write_mp4(video_path, result.frames, fps=result.video_fps)
        lines.append(f"  video: {video_path}")
    return "\n".join(lines)
