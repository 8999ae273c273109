"""S3RL (snapshot resets from a teacher) vs plain SAC at equal student agent steps, 3+ independent
seeds: eval return curves and, on arm tasks, the first evaluation with a success.

    # teacher: a robo_rl SAC checkpoint trained longer (say how long in BENCHMARKS.md)
    .venv/bin/python -m robo_rl.cli train agent=sac task=gym/Hopper-v5 seed=100 train.steps=60000 \
        hydra.run.dir=bench/results/s3rl/teachers/gym_Hopper-v5
    .venv/bin/python bench/s3rl_vs_sac.py --task gym/Hopper-v5 \
        --teacher bench/results/s3rl/teachers/gym_Hopper-v5/checkpoints/latest.pt --steps 20000
    .venv/bin/python bench/s3rl_vs_sac.py --task arm/peg_insert --teacher scripted --steps 10000 \
        --overrides agent.init_temperature=0.05

Every run is `robo-rl train agent=sac task=<task> [snapshot=s3rl snapshot.teacher=...]` through
compose_train_config + robo_rl.loops.online.train, in its own directory under --out (default
bench/results/s3rl/<task>/<variant>/s<seed>), so a stopped benchmark resumes its runs. The
baseline (sac) is the same SAC, seeds and budget with env.reset starts. S3RL runs use the paper's
teacher settings (10 episodes, best 10, a snapshot every 10 steps, k = 6, truncation 100) and
snapshot resets for the first --snapshot-steps agent steps (paper: 100k of 1M; scaled here).
Returns are of evaluation episodes (env.reset starts, deterministic policy) for both variants.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_runs import curves, finish_report, run_comparison, run_parser, train_once  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "s3rl"
VARIANTS = ("sac", "s3rl")


def overrides(args, variant: str, seed: int) -> list[str]:
    values = ["agent=sac", f"task={args.task}", f"seed={seed}", f"train.steps={args.steps}",
              f"train.seed_steps={args.seed_steps}", f"train.eval_every={args.eval_every}",
              f"train.eval_episodes={args.eval_episodes}", f"train.checkpoint_every={args.eval_every}",
              "train.video=false", "train.progress=false", "threads=1", "device=cpu", "plasticity.every=0",
              *args.overrides]
    if variant == "s3rl":
        values += ["snapshot=s3rl", f"snapshot.teacher={args.teacher}", f"snapshot.snapshot_steps={args.snapshot_steps}"]
    return values


def run_one(job) -> str:
    args, variant, seed = job
    summary = train_once(args.out / variant / f"s{seed}", overrides(args, variant, seed))
    return f"{variant} seed {seed}: last eval {summary['last_eval']:.1f}"


def first_success(steps: np.ndarray, rates: np.ndarray) -> list[float]:
    """Per run: the first eval step with a success, nan if none."""
    return [float(steps[np.argmax(r > 0)]) if np.any(r > 0) else float("nan") for r in rates]


def report(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=100)
    lines = ["| variant | seeds | final eval return (mean +/- std) | mean eval over run (AUC) | first eval with a success |",
             "|---|---|---|---|---|"]
    for variant in VARIANTS:
        dirs = [args.out / variant / f"s{seed}" for seed in args.seeds]
        steps, returns = curves(dirs, "eval.csv", "return_mean")
        if steps is None:
            continue
        mean, std = returns.mean(0), returns.std(0)
        ax.plot(steps, mean, label=f"{variant} ({len(returns)} seeds)")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
        success_steps, rates = curves(dirs, "eval.csv", "success_rate")
        success = "n/a (no success signal)"
        if success_steps is not None:
            firsts = first_success(success_steps, rates)
            success = ", ".join("never" if np.isnan(f) else str(int(f)) for f in firsts)
        lines.append(f"| {variant} | {len(returns)} | {returns[:, -1].mean():.1f} +/- {returns[:, -1].std():.1f} "
                     f"(step {int(steps[-1])}) | {returns.mean():.1f} | {success} |")
    if args.snapshot_steps < args.steps:
        ax.axvline(args.snapshot_steps, color="gray", lw=0.8, ls=":", label="S3RL: last snapshot reset")
    ax.set(xlabel="student agent steps", ylabel="eval return", title=f"{args.task}: S3RL-SAC vs SAC")
    png = args.out / "s3rl_vs_sac.png"
    finish_report(fig, [ax], png, lines)


def main() -> None:
    parser = run_parser(__doc__, task="gym/Hopper-v5", steps=20_000, seed_steps=1000, eval_every=2000)
    parser.add_argument("--teacher", required=True, help="a teacher checkpoint of --task, or 'scripted' (arm tasks)")
    parser.add_argument("--snapshot-steps", type=int, default=10_000)
    parser.add_argument("--overrides", nargs="*", default=[], help="more `robo-rl train` overrides, for both variants")
    run_comparison(parser.parse_args(), RESULTS, VARIANTS, run_one, report)


if __name__ == "__main__":
    main()
