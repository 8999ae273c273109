"""Shared test helpers: small-but-real training configs and a CLI runner."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

REPO = Path(__file__).resolve().parents[1]

# A real run of the default task, shrunk so that each invocation takes seconds on one core.
SMALL_TRAIN = [
    "task=dmc/cartpole_swingup", "agent.hidden_dims=[32,32]", "agent.batch_size=32",
    "train.steps=300", "train.seed_steps=100", "train.eval_every=150", "train.eval_episodes=1",
    "train.checkpoint_every=150", "train.log_every=50", "train.video=false", "train.progress=false",
    "threads=1", "replay.chunk_size=64", "device=cpu",
]


def compose_train_cfg(overrides: list[str]):
    from robo_rl.config_schema import compose_train_config

    return compose_train_config(overrides)


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    return subprocess.run([sys.executable, "-m", "robo_rl.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """(size, mtime_ns) of every file under root: equal snapshots mean nothing was touched."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(1)
    yield


def episodes_equal(a, b) -> None:
    """Two lists of episodes (robo_rl.offline.dataset.read_episodes) hold the same data, exactly."""
    import numpy as np

    assert len(a) == len(b)
    for x, y in zip(a, b):
        for name in ("observations", "actions", "rewards", "terminations", "truncations"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
