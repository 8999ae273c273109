"""What the learning-comparison benchmarks share: one `robo-rl train` run per (variant, seed) in its
own directory (resumable: a finished run leaves done.json, an unfinished one resumes), run in a
process pool, and curves read back from the runs' CSVs on the steps every seed logged."""
from __future__ import annotations

import csv
import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable

import numpy as np


def train_once(run_dir: Path, overrides: list[str]) -> dict:
    """`robo-rl train <overrides>` (online or mode=offline) in run_dir through the user's path;
    -> done.json's content."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from robo_rl.config_schema import compose_train_config
    from robo_rl.loops import run_training

    done = run_dir / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    result = run_training(compose_train_config(overrides), run_dir)
    summary = {"last_eval": result.last_eval, "steps": result.steps, "last_score": result.last_score}
    done.write_text(json.dumps(summary))
    return summary


def run_all(jobs: Iterable, run_one: Callable, workers: int) -> None:
    """run_one(job) -> a line to print, for every job, `workers` at a time (one core each)."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for line in pool.map(run_one, list(jobs)):
            print(line, flush=True)


def read_csv(path: Path, key: str) -> tuple[np.ndarray, np.ndarray]:
    with path.open() as f:
        rows = [r for r in csv.DictReader(f) if r.get(key) not in (None, "")]
    return np.array([float(r["step"]) for r in rows]), np.array([float(r[key]) for r in rows])


def curves(run_dirs: list[Path], filename: str, key: str):
    """(steps, runs x steps) on the steps every run logged; (None, None) when no run logged `key`."""
    series = [read_csv(d / filename, key) for d in run_dirs if (d / filename).exists()]
    series = [(steps, values) for steps, values in series if len(steps)]  # runs that logged the key
    if not series:
        return None, None
    common = sorted(set.intersection(*(set(s.tolist()) for s, _ in series)))
    values = np.array([[v[list(s).index(step)] for step in common] for s, v in series])
    return np.array(common), values


def run_parser(doc: str, task: str, steps: int, seed_steps: int, eval_every: int):
    """The arguments every learning comparison takes (add its own after)."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--task", default=task)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--seed-steps", type=int, default=seed_steps)
    parser.add_argument("--eval-every", type=int, default=eval_every)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="runs in parallel (one core each)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--table-only", action="store_true")
    return parser


def run_comparison(args, results: Path, variants: Iterable[str], run_one: Callable, report: Callable) -> None:
    """Every (variant, seed) run under args.out (default results/<task>), then the report."""
    args.out = args.out or results / args.task.replace("/", "_")
    if not args.table_only:
        run_all([(args, variant, seed) for seed in args.seeds for variant in variants], run_one, args.workers)
    report(args)


def finish_report(fig, axes, png: Path, lines: list[str]) -> None:
    """Grid and legend on every axis, the figure to png, the table next to it as table.md, both printed."""
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(png)
    table = "\n".join(lines)
    (png.parent / "table.md").write_text(table + "\n")
    print(table)
    print(f"curves: {png}")
