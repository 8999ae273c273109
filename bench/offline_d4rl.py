"""A2PR vs TD3+BC on D4RL-style datasets made by `robo-rl collect` from our own SAC runs:
normalised score (0 = random policy, 100 = expert policy) after a fixed number of gradient steps,
3+ independent seeds per (task, dataset, learner).

    # sources: one SAC run per task that keeps a checkpoint every 2500 steps (its final = expert)
    .venv/bin/python -m robo_rl.cli train agent=sac task=gym/HalfCheetah-v5 seed=200 train.steps=50000 \
        train.eval_every=2500 train.checkpoint_every=2500 train.keep_every=2500 threads=1 \
        hydra.run.dir=bench/results/offline/sources/gym_HalfCheetah-v5
    .venv/bin/python bench/offline_d4rl.py --tasks gym/HalfCheetah-v5 gym/Hopper-v5 --gradient-steps 10000

Datasets (bench/results/offline/datasets/<task>/<kind>, the D4RL recipe, scaled down):
  medium         --dataset-steps transitions of the kept checkpoint whose eval return is closest to
                 a third of the final one, acting with its exploration (policy_mode=sample)
  medium-replay  that checkpoint's run replay up to it (policy=replay:<checkpoint>)
  expert         --dataset-steps transitions of the final checkpoint (policy_mode=sample)
  medium-expert  medium followed by expert (robo-rl dataset concat)
References: the uniform random policy and the final checkpoint's mean action, 10 evaluation
episodes each, measured once (with the medium dataset) and given to the others.

Runs: `robo-rl train mode=offline agent=<td3_bc|a2pr preset> dataset=...` through the CLI's
config path (compose_train_config + train_offline), one directory per run under
bench/results/offline/runs/<task>/<dataset>/<learner>/s<seed> (resumable). A2PR uses the
per-task presets (a2pr_halfcheetah: alpha 40; a2pr_hopper: the authors' hopper-medium settings);
TD3+BC the paper's alpha 2.5 everywhere.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning_runs import curves, finish_report, run_all, train_once  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "offline"
DATASETS = ("medium", "medium-replay", "medium-expert")
A2PR_PRESETS = {"gym/HalfCheetah-v5": "a2pr_halfcheetah", "gym/Hopper-v5": "a2pr_hopper"}
MEDIUM_SHARE = 1 / 3


def slug(task: str) -> str:
    return task.replace("/", "_")


def eval_returns(run_dir: Path) -> dict[int, float]:
    with (run_dir / "eval.csv").open() as f:
        return {int(float(r["step"])): float(r["return_mean"]) for r in csv.DictReader(f)}


def medium_checkpoint(source: Path) -> tuple[Path, float, float]:
    """(kept checkpoint closest to a third of the final eval return, its return, the final one)."""
    returns = eval_returns(source)
    final = returns[max(returns)]
    kept = {int(p.stem.split("_")[1]): p for p in (source / "checkpoints").glob("step_*.pt")}
    step = min((s for s in kept if s in returns and 0 < s < max(returns)),
               key=lambda s: abs(returns[s] - MEDIUM_SHARE * final))
    return kept[step], returns[step], final


def make_datasets(args, task: str) -> Path:
    from robo_rl.config_schema import compose_collect_config
    from robo_rl.offline.collect import collect
    from robo_rl.offline.dataset import DATASET_FILE, concatenate, read_info

    source = args.sources / slug(task)
    root = RESULTS / "datasets" / slug(task)
    expert = source / "checkpoints" / "latest.pt"
    medium, medium_return, final = medium_checkpoint(source)
    print(f"{task}: medium = {medium.name} (eval {medium_return:.1f} of final {final:.1f})", flush=True)
    common = [f"task={task}", f"reference.expert={expert}", "progress=false", "threads=1", "device=cpu"]

    def make(kind: str, *extra: str) -> None:
        if not (root / kind / DATASET_FILE).exists() or not read_info(root / kind).complete:
            references = []
            if kind != "medium":
                info = read_info(root / "medium")
                references = [f"reference.random_return={info.random_return}",
                              f"reference.expert_return={info.expert_return}"]
            collect(compose_collect_config([*common, f"out={root / kind}", f"kind={kind}", *references, *extra]))
        print(f"  {read_info(root / kind).summary()}", flush=True)

    make("medium", f"policy={medium}", f"steps={args.dataset_steps}")
    make("medium-replay", f"policy=replay:{medium}")
    make("expert", f"policy={expert}", f"steps={args.dataset_steps}", "seed=1")
    if not (root / "medium-expert" / DATASET_FILE).exists():
        concatenate([root / "medium", root / "expert"], root / "medium-expert", kind="medium-expert")
    print(f"  {read_info(root / 'medium-expert').summary()}", flush=True)
    return root


def overrides(args, task: str, dataset: str, learner: str, seed: int) -> list[str]:
    agent = A2PR_PRESETS.get(task, "a2pr") if learner == "a2pr" else learner
    return [f"agent={agent}", f"task={task}", "mode=offline", f"dataset={RESULTS / 'datasets' / slug(task) / dataset}",
            f"seed={seed}", f"train.steps={args.gradient_steps}", f"train.eval_every={args.eval_every}",
            f"train.checkpoint_every={args.eval_every}", f"train.eval_episodes={args.eval_episodes}",
            "train.log_every=500", "train.video=false", "train.progress=false", "threads=1", "device=cpu",
            "plasticity.every=0"]


def run_dir(task: str, dataset: str, learner: str, seed: int) -> Path:
    return RESULTS / "runs" / slug(task) / dataset / learner / f"s{seed}"


def run_one(job) -> str:
    args, task, dataset, learner, seed = job
    summary = train_once(run_dir(task, dataset, learner, seed), overrides(args, task, dataset, learner, seed))
    return f"{task} {dataset} {learner} seed {seed}: normalised score {summary['last_score']:.1f}"


def report(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from robo_rl.offline.dataset import read_info

    lines = [f"Normalised score (mean +/- std over seeds {args.seeds}) after {args.gradient_steps} gradient steps; "
             f"mean over the last {args.last_evals} evaluations of {args.eval_episodes} episodes in brackets.", "",
             "| task | dataset | transitions | random / expert return | TD3+BC | A2PR |", "|---|---|---|---|---|---|"]
    fig, axes = plt.subplots(len(args.tasks), len(args.datasets), squeeze=False,
                             figsize=(5 * len(args.datasets), 3.5 * len(args.tasks)))
    for row, task in enumerate(args.tasks):
        for col, dataset in enumerate(args.datasets):
            info = read_info(RESULTS / "datasets" / slug(task) / dataset)
            cells = []
            for learner in ("td3_bc", "a2pr"):
                steps, scores = curves([run_dir(task, dataset, learner, s) for s in args.seeds], "eval.csv",
                                       "normalized_score")
                if steps is None:
                    cells.append("n/a")
                    continue
                final, tail = scores[:, -1], scores[:, -args.last_evals:].mean(axis=1)
                cells.append(f"{final.mean():.1f} +/- {final.std():.1f} ({tail.mean():.1f})")
                ax = axes[row, col]
                ax.plot(steps, scores.mean(0), label=learner)
                ax.fill_between(steps, scores.min(0), scores.max(0), alpha=0.2)
                ax.set_title(f"{task} {dataset}")
                ax.set_xlabel("gradient steps")
                ax.set_ylabel("normalised score")
            lines.append(f"| {task} | {dataset} | {info.transitions} ({info.episodes} episodes) | "
                         f"{info.random_return:.1f} / {info.expert_return:.1f} | {cells[0]} | {cells[1]} |")
    finish_report(fig, axes.ravel(), RESULTS / "offline_d4rl.png", lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(A2PR_PRESETS))
    parser.add_argument("--sources", type=Path, default=RESULTS / "sources")
    parser.add_argument("--dataset-steps", type=int, default=50_000)
    parser.add_argument("--gradient-steps", type=int, default=5000)
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--last-evals", type=int, default=3)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--datasets-only", action="store_true")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    if not args.table_only:
        for task in args.tasks:
            make_datasets(args, task)
        if args.datasets_only:
            return
        jobs = [(args, task, dataset, learner, seed) for seed in args.seeds for task in args.tasks
                for dataset in args.datasets for learner in ("td3_bc", "a2pr")]
        run_all(jobs, run_one, args.workers)
    report(args)


if __name__ == "__main__":
    main()
