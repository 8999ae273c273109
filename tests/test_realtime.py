"""The real-time loop (realtime.enabled): the env keeps its wall-clock rate while the learner
updates concurrently; checkpoints and replay resume like the synchronous loop's. And success as
a metric: the train.csv column, the eval success rate and the train.stop_success_rate stop."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO, compose_train_cfg, run_cli
from robo_rl.checkpoint import load_checkpoint
from robo_rl.loops import online
from robo_rl.loops.online import success_stop
from robo_rl.replay import ReplayBuffer

RATE_HZ = 20.0


def _rows(path) -> list[dict[str, float]]:
    import csv

    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]

# arm/reach with small networks: an update costs a few ms, so the learner runs many per step.
REALTIME = [
    "task=arm/reach", "agent=sac", "agent.hidden_dims=[64,64]", "agent.batch_size=32", "realtime.enabled=true",
    f"realtime.control_hz={RATE_HZ}", "train.seed_steps=40", "train.eval_episodes=1", "train.video=false",
    "train.progress=false", "threads=1", "device=cpu", "replay.chunk_size=32", "train.log_every=50",
]


def test_realtime_loop_keeps_the_control_rate_while_updates_run(tmp_path, monkeypatch):
    # Ground truth from outside the loop: the wall-clock times of the training env's steps.
    step_times: list[float] = []
    make_env = online.make_env

    def timed_env(*args, **kwargs):
        env = make_env(*args, **kwargs)
        if not step_times and not getattr(timed_env, "wrapped", False):  # the first env is the training env
            timed_env.wrapped = True
            inner = env.step

            def step(action):
                out = inner(action)
                step_times.append(time.perf_counter())
                return out
            env.step = step
        return env

    monkeypatch.setattr(online, "make_env", timed_env)
    cfg = compose_train_cfg(REALTIME + ["train.steps=200", "train.eval_every=1000", "train.checkpoint_every=1000"])
    result = online.train(cfg, tmp_path / "rt")

    assert len(step_times) == 200
    # Inside episodes the steps follow the grid: the mean rate from the env's own step times and the
    # loop's reported rate are within 5% of the target.
    gaps = np.diff(step_times)
    in_episode = gaps[gaps < 2.0 / RATE_HZ]     # gaps across a reset are not control time
    assert len(in_episode) >= 150
    assert abs(1.0 / np.mean(in_episode) - RATE_HZ) <= 0.05 * RATE_HZ
    assert abs(result.control_hz - RATE_HZ) <= 0.05 * RATE_HZ
    # The learner really ran beside the env: the checkpoint's update counter, not the loop's log.
    updates = load_checkpoint(tmp_path / "rt/checkpoints/latest.pt")["agent"]["num_updates"]
    assert updates >= 0.5 * (200 - 40)
    rows = _rows(tmp_path / "rt/train.csv")
    assert rows and all("control_hz" in row and "updates_per_step" in row for row in rows)
    # The per-episode counts add up to the learner's own, less the few still running after the last row.
    logged = sum(row["updates_per_step"] * row["episode_length"] for row in rows)
    assert updates - 5 <= logged <= updates


def _start(run_dir, *overrides):
    return subprocess.Popen([sys.executable, "-m", "robo_rl.cli", "train", *REALTIME, *overrides,
                             f"hydra.run.dir={run_dir}"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_realtime_run_stopped_by_sigterm_resumes_with_replay_and_learner_intact(tmp_path):
    run_dir = tmp_path / "r"
    proc = _start(run_dir, "realtime.control_hz=50", "train.steps=100000", "train.eval_every=100000",
                  "train.checkpoint_every=100000")
    deadline = time.time() + 120
    while len(list((run_dir / "replay").glob("chunk_*"))) < 4:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, "timed out waiting for the run"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    saved = load_checkpoint(run_dir / "checkpoints/latest.pt")
    before = ReplayBuffer.load(run_dir / "replay")
    assert len(before) == saved["step"] >= 4 * 32     # flushed: nothing collected is lost
    assert saved["mid_episode"] or saved["step"] % 50 == 0
    assert saved["agent"]["num_updates"] > 0

    proc = run_cli("train", *REALTIME, "realtime.control_hz=50", f"train.steps={saved['step'] + 60}",
                   "train.eval_every=100000", "train.checkpoint_every=100000", "resume=true", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"resumed {run_dir} at step {saved['step']}" in proc.stderr
    after = load_checkpoint(run_dir / "checkpoints/latest.pt")
    assert after["step"] == saved["step"] + 60
    assert after["agent"]["num_updates"] > saved["agent"]["num_updates"]   # the learner continued
    replay = ReplayBuffer.load(run_dir / "replay")
    assert len(replay) == saved["step"] + 60
    n = len(before)
    np.testing.assert_array_equal(replay._action[:n], before._action[:n])   # the old data, unchanged
    np.testing.assert_array_equal(replay._reward[:n], before._reward[:n])


def test_success_is_a_train_metric_and_stops_the_run(tmp_path):
    # A 1 m success radius: every reach episode succeeds at its first step (the env's own flag).
    overrides = ["task=arm/reach", "agent.hidden_dims=[32,32]", "agent.batch_size=32", "task.options.success_threshold=1.0",
                 "train.steps=1000", "train.seed_steps=10", "train.eval_every=20", "train.eval_episodes=2",
                 "train.checkpoint_every=500", "train.video=false", "train.progress=false", "threads=1",
                 "train.stop_success_rate=1.0", "train.stop_success_evals=2"]
    result = online.train(compose_train_cfg(overrides), tmp_path / "s")
    assert result.steps == 20 and result.stopped_early and "stop_success_rate" in result.stopped_early
    assert result.last_success == 1.0 and "success:" in result.summary()
    assert load_checkpoint(tmp_path / "s/checkpoints/latest.pt")["step"] == 20
    rows = _rows(tmp_path / "s/train.csv")
    assert len(rows) == 20 and all(row["success"] == 1.0 and row["episode_length"] == 1 for row in rows)
    assert [row["success_rate"] for row in _rows(tmp_path / "s/eval.csv")] == [1.0, 1.0]
    # Resuming a run that already met its criterion trains no further.
    again = online.train(compose_train_cfg(overrides), tmp_path / "s")
    assert again.steps == 20 and again.stopped_early


@pytest.mark.parametrize("history,needed,expected", [
    ([(0, 0.0), (10, 0.9)], 1, True),
    ([(0, 0.9), (10, 0.8)], 2, False),
    ([(0, 0.9), (10, 1.0)], 2, True),
    ([(10, 1.0)], 2, False),
    ([], 1, False),
])
def test_success_stop_needs_the_last_evaluations_in_a_row(history, needed, expected):
    t = {"stop_success_rate": 0.9, "stop_success_evals": needed}
    assert (success_stop(history, t) is not None) == expected
    assert success_stop(history, {"stop_success_rate": None, "stop_success_evals": 1}) is None


def test_realtime_settings_are_range_checked(tmp_path):
    proc = run_cli("train", "realtime.enabled=true", "realtime.control_hz=-1", "train.stop_success_rate=2",
                   f"hydra.run.dir={tmp_path / 'x'}")
    assert proc.returncode == 2
    assert "realtime.control_hz must be > 0" in proc.stderr and "train.stop_success_rate must be in (0, 1]" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())   # nothing written


@pytest.mark.parametrize("agent", ["sac", "drm"])
def test_acting_copy_acts_like_the_learner_after_a_push_and_holds_still_in_evaluation(agent):
    import torch

    from robo_rl.agents import make_agent
    from robo_rl.envs import make_env
    from robo_rl.loops.common import env_config
    from robo_rl.loops.realtime import ActingCopy, acting_learner_factory

    cfg = compose_train_cfg([f"agent={agent}", "agent.hidden_dims=[32,32]", "task=dmc/cartpole_swingup"])
    env = make_env(env_config(cfg.task, 0), seed=0)
    learner = make_agent(cfg.agent, env.observation_space, env.action_space, torch.device("cpu"))
    acting = ActingCopy(learner, acting_learner_factory(make_agent, cfg.agent, env, torch.device("cpu"), None, 0))
    obs = np.stack([env.observation_space.sample() for _ in range(8)]).astype(np.float32)
    np.testing.assert_array_equal(acting.act(obs, step=0, eval_mode=True), learner.act(obs, step=0, eval_mode=True))

    with torch.no_grad():   # the learner moves on (as an update would)
        for p in learner.actor.parameters():
            p.add_(0.1)
    if agent == "drm":
        learner.awaken_step, learner.dormant_ratio = 123, 0.4
    moved = learner.act(obs, step=0, eval_mode=True)
    assert not np.allclose(acting.act(obs, step=0, eval_mode=True), moved)
    with acting.hold():
        acting.push()                   # an evaluation holds the policy still
        assert not np.allclose(acting.act(obs, step=0, eval_mode=True), moved)
    acting.push()
    np.testing.assert_array_equal(acting.act(obs, step=0, eval_mode=True), moved)
    if agent == "drm":   # the acting schedule follows the learner's (its exploration noise)
        assert acting.policy.exploration_std(500) == learner.exploration_std(500)
    env.close()
