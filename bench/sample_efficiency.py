"""Sample efficiency: evaluation return after a fixed env-step budget, robo_rl vs Stable-Baselines3 SAC.

    .venv/bin/python bench/sample_efficiency.py --tasks dmc/cheetah_run dmc/walker_walk --seeds 0 1 2 \
        --steps 50000 --agent rlpd --threads 2

Same budget for both (no action repeat, 5k random steps, 256x256, batch 256). SB3 runs its
default SAC; robo_rl runs the chosen agent preset. Each finished run is appended to a JSON
lines file (default bench/results/sample_efficiency.jsonl), so an interrupted benchmark resumes
and the table can be reprinted with --table-only. Prints a table of mean +/- std over seeds.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results" / "sample_efficiency.jsonl"
EVAL_EPISODES = 10


def run_robo_rl(task: str, seed: int, steps: int, seed_steps: int, agent: str, utd: int | None,
                threads: int, extra: list[str]) -> float:
    from robo_rl.config_schema import compose_train_config
    from robo_rl.loops.online import train

    overrides = [f"agent={agent}", f"task={task}", "task.action_repeat=1", f"train.steps={steps}",
                 f"train.seed_steps={seed_steps}", f"train.eval_every={steps}", f"train.eval_episodes={EVAL_EPISODES}",
                 f"train.checkpoint_every={steps}", "train.video=false", "train.progress=false",
                 f"threads={threads}", "device=cpu", f"seed={seed}"]
    if utd is not None:
        overrides.append(f"agent.critic_steps_per_update={utd}")
    overrides += extra
    cfg = compose_train_config(overrides)
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(cfg, Path(run_dir))
    return float(result.last_eval)


def run_sb3(task: str, seed: int, steps: int, seed_steps: int, threads: int) -> float:
    from stable_baselines3 import SAC

    from robo_rl.envs import EnvConfig, make_env

    torch.set_num_threads(threads)
    env = make_env(EnvConfig(name=task, obs_type="state", action_repeat=1, seed=seed), seed=seed)
    model = SAC("MlpPolicy", env, policy_kwargs={"net_arch": [256, 256]}, batch_size=256,
                learning_starts=seed_steps, buffer_size=1_000_000, seed=seed, device="cpu", verbose=0)
    model.learn(total_timesteps=steps)
    eval_env = make_env(EnvConfig(name=task, obs_type="state", action_repeat=1, seed=seed + 100_000),
                        seed=seed + 100_000)
    returns = []
    for i in range(EVAL_EPISODES):
        obs, _ = eval_env.reset(seed=seed + 100_000 + i)
        done, total = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = eval_env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def load(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def table(rows: list[dict]) -> str:
    keys = sorted({(r["task"], r["algo"], r["steps"]) for r in rows})
    lines = [f"{'task':<20} {'algo':<22} {'steps':>7} {'return (mean +/- std)':>24} {'seeds':>6} {'min/run':>8}"]
    for task, algo, steps in keys:
        vals = [r["return"] for r in rows if (r["task"], r["algo"], r["steps"]) == (task, algo, steps)]
        mins = [r["minutes"] for r in rows if (r["task"], r["algo"], r["steps"]) == (task, algo, steps)]
        lines.append(f"{task:<20} {algo:<22} {steps:>7} {np.mean(vals):>15.1f} +/- {np.std(vals):>5.1f} "
                     f"{len(vals):>6} {np.mean(mins):>8.1f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["dmc/cheetah_run", "dmc/walker_walk"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--seed-steps", type=int, default=5_000)
    parser.add_argument("--agent", default="rlpd", help="robo_rl agent preset (configs/agent/)")
    parser.add_argument("--utd", "--critic-steps-per-update", dest="utd", type=int, default=None,
                        help="override the preset's agent.critic_steps_per_update (UTD at replay ratio 1)")
    parser.add_argument("--override", nargs="*", default=[], metavar="KEY=VALUE",
                        help="more Hydra overrides for robo_rl, e.g. agent.critic_layer_norm=true")
    parser.add_argument("--label", default="", help="suffix of the robo_rl row's name (for --override runs)")
    parser.add_argument("--algos", nargs="+", default=["robo_rl", "sb3"], choices=["robo_rl", "sb3"])
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 4))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    if args.table_only:
        print(table(load(args.results)))
        return
    args.results.parent.mkdir(parents=True, exist_ok=True)
    for task in args.tasks:
        for seed in args.seeds:
            for algo in args.algos:
                name = (f"robo_rl-{args.agent}" + (f"-utd{args.utd}" if args.utd else "") + args.label
                        if algo == "robo_rl" else "sb3-sac")
                done = any((r["task"], r["algo"], r["seed"], r["steps"]) == (task, name, seed, args.steps)
                           for r in load(args.results))
                if done:
                    continue
                start = time.perf_counter()
                if algo == "robo_rl":
                    ret = run_robo_rl(task, seed, args.steps, args.seed_steps, args.agent, args.utd, args.threads,
                                      args.override)
                else:
                    ret = run_sb3(task, seed, args.steps, args.seed_steps, args.threads)
                row = {"task": task, "algo": name, "seed": seed, "steps": args.steps, "return": ret,
                       "minutes": (time.perf_counter() - start) / 60}
                with args.results.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    print(table(load(args.results)))


if __name__ == "__main__":
    main()
