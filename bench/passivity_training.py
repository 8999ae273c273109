"""Plain SAC vs passivity-aware SAC on arm/contact_maze, through the real loop and configs.

    MUJOCO_GL=egl .venv/bin/python bench/passivity_training.py --steps 4000 --seeds 0 1 2

Each run is exactly `robo-rl train` with these overrides (robo_rl.config_schema.compose_train_config
and robo_rl.loops.online.train, the code the CLI runs), in its own run dir under --out:

    SAC:                  task=arm/contact_maze constraint=none
    SAC + tank:           task=arm/contact_maze constraint=none task.options.energy_tank=true
    passivity-aware SAC:  task=arm/contact_maze constraint=energy   (tank on via configs/constraint/energy.yaml)

plus the shared `--override`s (defaults below: the agent's temperature; everything else is the
configs' defaults, so the constraint's budget and cost discount are configs/constraint/energy.yaml's).
The table reports, from each run's eval.csv at the end (train.eval_episodes fixed eval starts,
the same for every variant of a seed): energy per eval episode (the task's info["cost"]: the
energy the controller's non-passive part injects, or with the tank what it draws), success rate
and return; from train.csv: the training episodes' energy over the last quarter and the final
multiplier lambda.
"""
from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np

from robo_rl.config_schema import check_train_config, compose_train_config
from robo_rl.loops.online import train

TASK = "arm/contact_maze"
VARIANTS = {
    "SAC": ["constraint=none"],
    "SAC + tank": ["constraint=none", "task.options.energy_tank=true"],
    "passivity-aware SAC": ["constraint=energy"],
}
# SAC's default alpha 1.0 keeps the policy near uniform for the first thousands of steps.
DEFAULT_OVERRIDES = ["agent.init_temperature=0.1"]
LAST_TRAIN_SHARE = 0.25


def _rows(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def _float(row: dict, key: str) -> float:
    value = row.get(key, "")
    return float(value) if value not in ("", None) else math.nan


def run(variant: str, seed: int, args) -> dict:
    run_dir = Path(args.out) / f"{variant.replace(' ', '_').replace('+', 'plus')}_s{seed}"
    overrides = [f"task={TASK}", *VARIANTS[variant], f"seed={seed}", f"train.steps={args.steps}",
                 f"train.seed_steps={args.seed_steps}", f"train.eval_every={args.steps}",
                 f"train.eval_episodes={args.eval_episodes}", f"train.checkpoint_every={args.steps}",
                 "train.video=false", "train.progress=false", f"threads={args.threads}", "device=cpu",
                 f"hydra.run.dir={run_dir}", *args.override]
    cfg = compose_train_config([o for o in overrides if not o.startswith("hydra.")])
    check_train_config(cfg)
    start = time.perf_counter()
    train(cfg, run_dir)
    seconds = time.perf_counter() - start
    final = _rows(run_dir / "eval.csv")[-1]
    episodes = _rows(run_dir / "train.csv")
    late = [_float(r, "episode_cost") for r in episodes
            if _float(r, "step") > (1 - LAST_TRAIN_SHARE) * args.steps and not math.isnan(_float(r, "episode"))]
    lam = [_float(r, "lambda") for r in episodes if not math.isnan(_float(r, "lambda"))]
    return {"variant": variant, "seed": seed, "energy": _float(final, "cost_mean"),
            "success": _float(final, "success_rate"), "return": _float(final, "return_mean"),
            "train_energy_late": float(np.nanmean(late)) if late else math.nan,
            "lambda": lam[-1] if lam else math.nan, "seconds": seconds,
            "tank": bool(cfg.task.options.get("energy_tank", False)), "budget": cfg.constraint.get("budget")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4000, help="agent steps per run")
    parser.add_argument("--seed-steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--override", nargs="*", default=DEFAULT_OVERRIDES,
                        help="extra `robo-rl train` overrides for every run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="runs/bench_passivity_training")
    args = parser.parse_args()

    results = []
    for seed in args.seeds:
        for variant in args.variants:
            result = run(variant, seed, args)
            results.append(result)
            print(f"done: {variant:20s} seed {seed} ({result['seconds']:.0f} s)", flush=True)

    print(f"\n{TASK}, state obs, {args.steps} agent steps ({args.seed_steps} random), overrides "
          f"{' '.join(args.override) or '-'}, {args.eval_episodes} eval episodes per run")
    header = (f"{'variant':20s} {'seed':>4s} {'tank':>5s} {'energy/ep (J)':>13s} {'success':>7s} {'return':>8s} "
              f"{'train energy/ep, last 25%':>26s} {'lambda':>7s}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r['variant']:20s} {r['seed']:4d} {str(r['tank']):>5s} {r['energy']:13.2f} {r['success']:7.2f} "
              f"{r['return']:8.2f} {r['train_energy_late']:26.2f} {r['lambda']:7.3f}")


if __name__ == "__main__":
    main()
