"""Real-time loop vs the synchronous loop at a robot's 10 Hz: achieved control rate and learner
updates per agent step, with the same learner and task.

    .venv/bin/python bench/realtime_loop.py [--task arm/peg_insert] [--agent rlpd] [--steps 600]
        [--overrides KEY=VALUE ...] [--threads 1] [--hardware twin]

Both runs are `robo-rl train` through the user's path (compose_train_config + run_training):
- baseline: the synchronous loop (realtime.enabled=false) with the env stepping as fast as it can:
  its wall time per agent step (act + env step + train.replay_ratio updates) says whether a robot
  could be driven at control_hz by it at all (a 10 Hz robot leaves 100 ms per step);
- real time: realtime.enabled=true, the env paced at the task's control_hz (or the ROS 2 twin's
  own pace with --hardware twin), the learner in its thread.
Printed: the synchronous loop's steps/s and its ratio to the target rate, the real-time loop's
achieved rate (mean over episodes) and its ratio to the target, late steps, and learner updates
per agent step in both (the synchronous loop runs exactly train.replay_ratio).
"""
from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")


def run(overrides: list[str]) -> tuple[object, float, list[dict]]:
    from robo_rl.config_schema import compose_train_config
    from robo_rl.loops import run_training

    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        result = run_training(compose_train_config(overrides), Path(run_dir))
        wall = time.perf_counter() - start
        with open(Path(run_dir) / "train.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    return result, wall, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="arm/peg_insert")
    parser.add_argument("--agent", default="rlpd")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed-steps", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hardware", default=None, help="twin: the real-time run goes through the ROS 2 twin")
    parser.add_argument("--overrides", nargs="*", default=[])
    args = parser.parse_args()

    common = [f"task={args.task}", f"agent={args.agent}", f"train.steps={args.steps}",
              f"train.seed_steps={args.seed_steps}", f"train.eval_every={args.steps}", "train.eval_episodes=1",
              f"train.checkpoint_every={args.steps}", "train.video=false", "train.progress=false",
              f"threads={args.threads}", "device=cpu", *args.overrides]
    sync, sync_wall, _ = run(common)
    realtime_overrides = common + ["realtime.enabled=true"]
    if args.hardware:
        realtime_overrides.append(f"hardware={args.hardware}")
    rt, rt_wall, rows = run(realtime_overrides)

    from robo_rl.config_schema import compose_train_config
    from robo_rl.envs import make_env
    from robo_rl.loops.common import env_config
    from robo_rl.loops.realtime import RealtimeConfig, control_period

    cfg = compose_train_config(common)
    env = make_env(env_config(cfg.task, 0), seed=0)
    target_hz = 1.0 / control_period(RealtimeConfig(enabled=True), env)
    env.close()
    late = max((float(r["late_steps"]) for r in rows if r.get("late_steps")), default=0.0)
    learning_rows = [r for r in rows if float(r["step"]) > args.seed_steps and r.get("control_hz")]
    learning_hz = [float(r["control_hz"]) for r in learning_rows]
    print(f"task {args.task}, agent {args.agent}, {args.steps} agent steps ({args.seed_steps} seed), "
          f"target {target_hz:.1f} Hz, threads {args.threads}")
    print(f"baseline synchronous loop: {sync.learning_env_steps_per_s:.1f} agent steps/s while learning "
          f"(ratio to target {sync.learning_env_steps_per_s / target_hz:.2f}), "
          f"{sync.learning_updates_per_s / sync.learning_env_steps_per_s:.2f} updates per agent step, wall {sync_wall:.0f} s")
    print(f"real-time loop: {rt.control_hz:.2f} agent steps/s in episodes (ratio to target {rt.control_hz / target_hz:.3f}); "
          f"while learning min episode {min(learning_hz, default=float('nan')):.2f} Hz; "
          f"{rt.updates_per_step:.2f} updates per agent step overall, "
          f"{sum(float(r['updates_per_step']) * float(r['episode_length']) for r in learning_rows) / max(1, sum(float(r['episode_length']) for r in learning_rows)):.2f} after the seed steps; "
          f"late steps {late:.0f}; wall {rt_wall:.0f} s")


if __name__ == "__main__":
    main()
