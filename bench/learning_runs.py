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
    """`robo-rl train <overrides>` in run_dir through the user's path; -> done.json's content."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from robo_rl.config_schema import compose_train_config
    from robo_rl.loops.online import train

    done = run_dir / "done.json"
    if done.exists():
        return json.loads(done.read_text())
    result = train(compose_train_config(overrides), run_dir)
    summary = {"last_eval": result.last_eval, "steps": result.steps}
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
    """(steps, runs x steps) on the steps every run logged; (None, None) when none has the file."""
    series = [read_csv(d / filename, key) for d in run_dirs if (d / filename).exists()]
    if not series:
        return None, None
    common = sorted(set.intersection(*(set(s.tolist()) for s, _ in series)))
    values = np.array([[v[list(s).index(step)] for step in common] for s, v in series])
    return np.array(common), values
