"""SAC training throughput: robo_rl vs Stable-Baselines3, same task, networks, batch, UTD and threads.

    .venv/bin/python bench/sac_throughput.py --steps 3000 --warmup 1000 --threads 2

Both run their own complete training loop on gym/HalfCheetah-v5 (256x256 MLPs, batch 256, one
gradient step per env step, no action repeat) and are timed after their random warm-up steps, so
the numbers are steady-state env-steps/s while learning. robo_rl's loop includes everything a
real run does (replay persisted to disk, CSV/TensorBoard logging); its periodic evaluations are
excluded from the timing, and SB3 runs without evaluation. Needs the bench extra
(`pip install -e '.[bench]'` or `make bench`).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

TARGET_RATIO = 2.5


def robo_rl_steps_per_s(steps: int, warmup: int, threads: int, seed: int) -> float:
    from hydra import compose, initialize_config_dir

    from robo_rl.cli import config_dir
    from robo_rl.loops.online import train

    overrides = ["agent=sac", "task=gym/HalfCheetah-v5", "agent.hidden_dims=[256,256]", "agent.batch_size=256",
                 "agent.utd=1", "train.replay_ratio=1", f"train.steps={warmup + steps}",
                 f"train.seed_steps={warmup}", f"train.eval_every={10 * (warmup + steps)}", "train.eval_episodes=1",
                 f"train.checkpoint_every={10 * (warmup + steps)}", "train.video=false", "train.progress=false",
                 f"threads={threads}", "device=cpu", f"seed={seed}"]
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(cfg, Path(run_dir))
    return float(result.learning_env_steps_per_s)


def sb3_steps_per_s(steps: int, warmup: int, threads: int, seed: int) -> float:
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    class Clock(BaseCallback):
        def __init__(self):
            super().__init__()
            self.start = None

        def _on_step(self) -> bool:
            if self.num_timesteps == warmup:
                self.start = time.perf_counter()
            return True

    torch.set_num_threads(threads)
    env = gym.make("HalfCheetah-v5")
    model = SAC("MlpPolicy", env, policy_kwargs={"net_arch": [256, 256]}, batch_size=256, learning_starts=warmup,
                train_freq=1, gradient_steps=1, buffer_size=1_000_000, seed=seed, device="cpu", verbose=0)
    clock = Clock()
    model.learn(total_timesteps=warmup + steps, callback=clock)
    elapsed = time.perf_counter() - clock.start
    return steps / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3000, help="timed env steps after warm-up")
    parser.add_argument("--warmup", type=int, default=1000, help="random steps before learning (not timed)")
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 4))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ours = robo_rl_steps_per_s(args.steps, args.warmup, args.threads, args.seed)
    print(f"robo_rl SAC : {ours:8.1f} env-steps/s", flush=True)
    theirs = sb3_steps_per_s(args.steps, args.warmup, args.threads, args.seed)
    print(f"SB3 SAC     : {theirs:8.1f} env-steps/s", flush=True)
    ratio = ours / theirs
    verdict = "PASS" if ratio >= TARGET_RATIO else "FAIL"
    print(f"ratio robo_rl/SB3 = {ratio:.2f} (target >= {TARGET_RATIO}) {verdict}  "
          f"[gym/HalfCheetah-v5, 256x256, batch 256, UTD 1, threads {args.threads}, torch {torch.__version__}]")


if __name__ == "__main__":
    main()
