"""The same SAC on arm/reach, through the ROS 2 twin vs on direct MuJoCo: success curve and wall
time per env step.

    .venv/bin/python bench/ros_vs_direct.py [--steps 6000] [--seed 0] [--eval-every 2000]

Both runs are the real training loop with the config `robo-rl train agent=sac task=arm/reach
agent.init_temperature=0.05 ...` composes (bench/arm_reach_learning.py); the twin run adds
`hardware=twin`, so it steps in real time (10 Hz policy, the twin and the controller node as
processes on the same machine). The baseline is the direct run measured in the same invocation:
the script prints the twin/direct ratio of wall time per env step and both success curves.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from arm_reach_learning import compose_config, read_eval_curve  # noqa: E402


def run(args, extra: list[str]) -> tuple[list, float, object]:
    from robo_rl.loops.online import train

    cfg, _ = compose_config(args.steps, args.seed_steps, args.eval_every, args.eval_episodes,
                            args.threads, args.seed, args.init_temperature, extra)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(cfg, Path(run_dir))
        curve = read_eval_curve(Path(run_dir))
    return curve, time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--seed-steps", type=int, default=1000)
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-temperature", type=float, default=0.05)
    parser.add_argument("--domain", type=int, default=96)
    args = parser.parse_args()

    direct, direct_wall, _ = run(args, [])
    print(f"direct: {direct_wall:.0f} s", flush=True)
    twin, twin_wall, result = run(args, ["hardware=twin", f"hardware.domain_id={args.domain}"])
    print(f"twin: {twin_wall:.0f} s", flush=True)

    print(f"\nSAC on arm/reach, seed {args.seed}, {args.steps} agent steps, "
          f"{args.eval_episodes} eval episodes every {args.eval_every} steps")
    print(f"{'step':>6} {'direct success':>15} {'twin success':>13}")
    for (step, d_success, _), (_, t_success, _) in zip(direct, twin):
        print(f"{step:>6} {d_success:>15.2f} {t_success:>13.2f}")
    per_step_direct = direct_wall / args.steps
    per_step_twin = twin_wall / args.steps
    print(f"wall per env step (whole run: resets, evals, updates): direct "
          f"{per_step_direct * 1e3:.1f} ms, twin {per_step_twin * 1e3:.1f} ms "
          f"(ratio {per_step_twin / per_step_direct:.2f}; the twin's floor is 1/control_hz = "
          f"100 ms of real time per step)")
    if result.learning_env_steps_per_s:
        print(f"twin while learning: {result.learning_env_steps_per_s:.1f} env steps/s")


if __name__ == "__main__":
    main()
