"""A short learning check where learning is the point (it can fail): RLPD with scripted demos
recorded by `robo-rl record` reaches a success on arm/reach within a small budget, through the
config path a user runs (preset=arm_rlpd, replay.demo_dir, train.stop_success_rate)."""
from __future__ import annotations

from tests.conftest import compose_train_cfg
from robo_rl.loops import run_training
from robo_rl.record import compose_record_config, record

GOAL_IN_CM = "task.options.goal_obs_scale=0.01"   # the goal offset observed in cm (docs/tasks.md), demos alike
BUDGET = 3000   # agent steps (5 min of robot time at 10 Hz); seed 0 stops at its first success well inside it


def test_rlpd_with_scripted_demos_reaches_a_success_on_arm_reach(tmp_path):
    demos = tmp_path / "demos"
    info = record(compose_record_config(["task=arm/reach", f"out={demos}", "episodes=10", "progress=false",
                                         GOAL_IN_CM]))
    assert len(info.episodes) == 10 and all(e["success"] for e in info.episodes)

    cfg = compose_train_cfg([
        "preset=arm_rlpd", "task=arm/reach", f"replay.demo_dir={demos}", GOAL_IN_CM,
        f"train.steps={BUDGET}", "train.seed_steps=200", "train.eval_every=250", "train.eval_episodes=5",
        "train.stop_success_rate=0.2", "train.video=false", "train.progress=false", "threads=1", "device=cpu",
        "plasticity.every=0", "seed=0"])
    result = run_training(cfg, tmp_path / "run")
    assert result.best_success is not None and result.best_success[1] > 0.0, (
        f"no eval success within {BUDGET} steps: success rates {result.first_success} -> {result.last_success}")
    assert result.stopped_early   # the success stop ended the run at that evaluation
