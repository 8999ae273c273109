"""Arm tasks with and without scripted demos: eval success rate vs agent steps (10 Hz robot time) for
plain SAC (preset=arm_sac, no demos) and RLPD (preset=arm_rlpd) with 10 and 20 scripted demos,
3 independent seeds each.

    .venv/bin/python bench/arm_demos_learning.py --task arm/peg_insert --steps 6000 --workers 1
    .venv/bin/python bench/arm_demos_learning.py --task arm/push --steps 6000 --workers 1 --variants rlpd_demos20

Demos: `robo-rl record task=<task> source=scripted episodes=<n> out=<out>/demos/<n> seed=100` (the
command users run; only successful episodes are kept), recorded once per task with the task's
defaults, so the demos' rewards and observations are those of the training runs.
Every run is `robo-rl train preset=arm_sac|arm_rlpd task=<task> seed=<s> [replay.demo_dir=...]` through
compose_train_config + run_training (bench/learning_runs.py), in its own directory under --out
(default bench/results/arm_demos/<task>/<variant>/s<seed>), so a stopped benchmark resumes. The
presets' settings (configs/preset/arm_*.yaml) are used as they are; only the budget, evaluation
cadence and logging (no video, no progress bar, 1 torch thread) are set here.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_runs import curves, finish_report, run_comparison, run_parser, train_once  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results" / "arm_demos"
VARIANTS = {"sac": ("arm_sac", 0), "rlpd_demos10": ("arm_rlpd", 10), "rlpd_demos20": ("arm_rlpd", 20)}
DEMO_SEED = 100  # record's episode-start stream; training seeds 0.. draw from other streams


def record_demos(task: str, episodes: int, out: Path) -> Path:
    """`robo-rl record ... source=scripted` into out (a stopped or finished recording is continued)."""
    subprocess.run([str(ROOT / ".venv" / "bin" / "robo-rl"), "record", f"task={task}", "source=scripted",
                    f"episodes={episodes}", f"out={out}", f"seed={DEMO_SEED}", "progress=false"],
                   check=True, cwd=ROOT)
    return out


def overrides(args, variant: str, seed: int) -> list[str]:
    preset, demos = VARIANTS[variant]
    values = [f"preset={preset}", f"task={args.task}", f"seed={seed}", f"train.steps={args.steps}",
              f"train.eval_every={args.eval_every}", f"train.eval_episodes={args.eval_episodes}",
              f"train.checkpoint_every={args.eval_every}", "train.video=false", "train.progress=false",
              "threads=1", "device=cpu", "plasticity.every=0", *args.overrides]
    if demos:
        values.append(f"replay.demo_dir={args.out / 'demos' / str(demos)}")
    return values


def run_one(job) -> str:
    args, variant, seed = job
    start = time.perf_counter()
    run_dir = args.out / variant / f"s{seed}"
    fresh = not (run_dir / "done.json").exists()
    summary = train_once(run_dir, overrides(args, variant, seed))
    if fresh:
        (run_dir / "wall_seconds.txt").write_text(f"{time.perf_counter() - start:.0f}\n")
    return f"{variant} seed {seed}: last eval return {summary['last_eval']:.2f}"


def report(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=100)
    lines = [f"{args.task}, {args.steps} agent steps, {args.eval_episodes} deterministic eval episodes every "
             f"{args.eval_every} steps", "",
             "| variant | seeds | success at each eval (mean over seeds) | final success per seed | "
             "first eval >= 0.9 per seed | wall per run (s) |", "|---|---|---|---|---|---|"]
    for variant in args.variants:
        dirs = [args.out / variant / f"s{seed}" for seed in args.seeds]
        steps, rates = curves(dirs, "eval.csv", "success_rate")
        if steps is None:
            continue
        mean, std = rates.mean(0), rates.std(0)
        ax.plot(steps, mean, marker="o", label=f"{variant} ({len(rates)} seeds)")
        ax.fill_between(steps, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), alpha=0.2)
        per_step = ", ".join(f"{int(s)}: {m:.2f}" for s, m in zip(steps, mean))
        finals = ", ".join(f"{r[-1]:.1f}" for r in rates)
        first = ", ".join(str(int(steps[np.argmax(r >= 0.9)])) if np.any(r >= 0.9) else "never" for r in rates)
        walls = [d / "wall_seconds.txt" for d in dirs]
        wall = ", ".join(w.read_text().strip() if w.exists() else "?" for w in walls)
        lines.append(f"| {variant} | {len(rates)} | {per_step} | {finals} | {first} | {wall} |")
    ax.axhline(0.9, color="gray", lw=0.8, ls=":", label="goal 0.9")
    ax.set(xlabel="agent steps (10 Hz: 600 steps = 1 min of robot time)", ylabel="eval success rate",
           ylim=(-0.02, 1.02), title=f"{args.task}: SAC vs RLPD + scripted demos")
    args.out.mkdir(parents=True, exist_ok=True)
    finish_report(fig, [ax], args.out / "success.png", lines)


def main() -> None:
    parser = run_parser(__doc__, task="arm/peg_insert", steps=18_000, seed_steps=500, eval_every=1000)
    parser.set_defaults(eval_episodes=10)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--overrides", nargs="*", default=[], help="more `robo-rl train` overrides, every variant")
    args = parser.parse_args()
    args.out = args.out or RESULTS / args.task.replace("/", "_")
    if not args.table_only:
        for _, demos in {VARIANTS[v] for v in args.variants}:
            if demos:
                record_demos(args.task, demos, args.out / "demos" / str(demos))
    run_comparison(args, RESULTS, args.variants, run_one, report)


if __name__ == "__main__":
    main()
