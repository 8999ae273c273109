"""Milliseconds per learner update of the arm-task presets vs `agent=rlpd` as shipped, on the task's
own spaces: does an agent step plus its updates fit the 100 ms of a 10 Hz robot step?

    .venv/bin/python bench/arm_update_cost.py [--task arm/peg_insert] [--threads 1] [--seconds 5]

Each variant is the learner `robo-rl train <overrides>` would build (compose_train_config +
make_agent), updating on a replay filled with random transitions of the task's spaces (only the
update is timed; the replay's own sampling is part of it, as in training). Baseline: `agent=rlpd`
(10 LayerNorm critics, 4 critic minibatches, batch 256), measured in the same run; variants are
interleaved over rounds so other load slows them alike. Printed: median ms per update and the
ratio to the baseline.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

VARIANTS = {
    "agent=rlpd (baseline)": ["agent=rlpd"],
    "preset=arm_rlpd": ["preset=arm_rlpd"],
    "preset=arm_sac": ["preset=arm_sac"],
}
FILL = 5000   # random transitions in the replay


def build(task: str, overrides: list[str]):
    import numpy as np
    import torch

    from robo_rl.agents import make_agent
    from robo_rl.config_schema import compose_train_config
    from robo_rl.envs import make_env
    from robo_rl.loops.common import env_config
    from robo_rl.replay import ReplayBuffer

    cfg = compose_train_config([f"task={task}", *overrides])
    env = make_env(env_config(cfg.task, 0), seed=0)
    agent = make_agent(cfg.agent, env.observation_space, env.action_space, torch.device("cpu"))
    replay = ReplayBuffer(env.observation_space, env.action_space, capacity=FILL + 10, n_step=cfg.agent.n_step,
                          gamma=cfg.agent.gamma, seed=0)
    rng = np.random.default_rng(0)
    replay.reset(env.observation_space.sample())
    for i in range(FILL):
        replay.add(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32), float(rng.normal()),
                   env.observation_space.sample(), False, (i + 1) % 50 == 0)
        if (i + 1) % 50 == 0:
            replay.reset(env.observation_space.sample())
    env.close()
    return agent, replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="arm/peg_insert")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=5.0, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    learners = {name: build(args.task, overrides) for name, overrides in VARIANTS.items()}
    times: dict[str, list[float]] = {name: [] for name in learners}
    for _ in range(args.rounds):
        for name, (agent, replay) in learners.items():
            agent.update(replay, 0)   # warm-up
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < args.seconds:
                agent.update(replay, 0)
                count += 1
            times[name].append(1000.0 * (time.perf_counter() - start) / count)
    baseline = statistics.median(times["agent=rlpd (baseline)"])
    print(f"{args.task}, threads {args.threads}, {args.rounds} rounds x {args.seconds:g} s per variant")
    for name, values in times.items():
        ms = statistics.median(values)
        print(f"{name:24s} {ms:7.1f} ms/update  (ratio to baseline {ms / baseline:.2f}; "
              f"10 Hz step budget 100 ms: {100.0 / ms:.1f} updates fit)")


if __name__ == "__main__":
    main()
