"""SAC learns arm/reach on a CPU budget: success rate of the deterministic policy vs agent steps.

    MUJOCO_GL=egl .venv/bin/python bench/arm_reach_learning.py [--steps 12000] [--seed 0]

Runs the real training loop (`robo_rl.loops.online.train`) with a Hydra-composed config, the
same way `robo-rl train agent=sac task=arm/reach ...` does, then reads the run's eval.csv
(success_rate: share of eval episodes in which info["success"] was ever true) and prints the
curve and writes it as a PNG. Extra Hydra overrides can follow `--`, e.g.
`-- agent.critic_steps_per_update=2 agent.batch_size=128`.

Settings that make it learn on this budget: the task config's 50-step episodes
(configs/task/arm/reach.yaml, max_episode_steps: 50) and SAC's initial temperature 0.05
(--init-temperature): the dense reward is -distance in metres, about -0.1 per step, so the
default alpha = 1 entropy bonus (~3 nats per step for 3 action dims) would swamp it for the
first ~10k updates while alpha is tuned down.
"""
from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

RESULTS = Path(__file__).resolve().parent / "results"


def compose_config(steps: int, seed_steps: int, eval_every: int, eval_episodes: int, threads: int,
                   seed: int, init_temperature: float, extra: list[str]):
    from robo_rl.config_schema import compose_train_config

    overrides = ["agent=sac", "task=arm/reach", f"agent.init_temperature={init_temperature}",
                 f"train.steps={steps}",
                 f"train.seed_steps={seed_steps}", f"train.eval_every={eval_every}",
                 f"train.eval_episodes={eval_episodes}", f"train.checkpoint_every={steps}",
                 "train.video=false", "train.progress=false", "replay.persist=false",
                 f"threads={threads}", "device=cpu", f"seed={seed}", *extra]
    return compose_train_config(overrides), overrides


def read_eval_curve(run_dir: Path) -> list[tuple[int, float, float]]:
    """(step, success_rate, return_mean) rows of the run's eval.csv."""
    with open(run_dir / "eval.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if rows and "success_rate" not in rows[0]:
        raise RuntimeError(f"{run_dir / 'eval.csv'} has no success_rate column: the task's info "
                           "lacks 'success'")
    return [(int(float(r["step"])), float(r["success_rate"]), float(r["return_mean"]))
            for r in rows]


def plot(curve: list[tuple[int, float, float]], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [c[0] for c in curve]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(steps, [c[1] for c in curve], marker="o")
    ax.set_xlabel("agent steps (10 Hz policy steps)")
    ax.set_ylabel("eval success rate")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12000, help="agent steps in total")
    parser.add_argument("--seed-steps", type=int, default=1000, help="random steps first")
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-temperature", type=float, default=0.05,
                        help="SAC's initial entropy temperature alpha (see above)")
    parser.add_argument("--png", type=Path, default=RESULTS / "arm_reach_success.png")
    args = parser.parse_args(argv)

    from robo_rl.loops.online import train

    cfg, overrides = compose_config(args.steps, args.seed_steps, args.eval_every,
                                    args.eval_episodes, args.threads, args.seed,
                                    args.init_temperature, extra)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(cfg, Path(run_dir))
        curve = read_eval_curve(Path(run_dir))
    wall = time.perf_counter() - start

    print(f"arm/reach SAC, overrides: {' '.join(overrides)}")
    print(f"{'step':>7} {'success_rate':>13} {'return_mean':>12}")
    for step, success, ret in curve:
        print(f"{step:>7} {success:>13.2f} {ret:>12.2f}")
    speed = result.learning_env_steps_per_s
    print(f"wall {wall:.0f} s, {speed:.1f} agent steps/s while learning"
          if speed else f"wall {wall:.0f} s")
    plot(curve, args.png, f"SAC on arm/reach, seed {args.seed}, {args.eval_episodes} eval "
                          f"episodes per point")
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
