"""SnapshotRL / S3RL (robo_rl.snapshot): the store, the status clusters, the sampler, and snapshot
resets through the training loop (truncation, schedule, resume, errors)."""
from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from conftest import SMALL_TRAIN, compose_train_cfg
from robo_rl.config_schema import ConfigError, check_train_config
from robo_rl.envs import make_env
from robo_rl.loops import online
from robo_rl.loops.common import env_config
from robo_rl.replay import ReplayBuffer
from robo_rl.snapshot import (S3RLConfig, SnapshotError, SnapshotStarts, SnapshotStore, cluster_labels,
                              discounted_to_go)

ARM = ["task=arm/reach", "agent.hidden_dims=[32,32]", "agent.batch_size=16", "train.eval_episodes=1",
       "train.video=false", "train.progress=false", "threads=1", "device=cpu", "replay.chunk_size=64"]
SCRIPTED = ["snapshot=s3rl", "snapshot.teacher=scripted", "snapshot.teacher_episodes=2",
            "snapshot.best_episodes=2", "snapshot.save_every=5", "snapshot.clusters=3"]


def test_discounted_return_to_go_by_hand():
    np.testing.assert_allclose(discounted_to_go([1.0, 0.0, 2.0], 0.5), [1.5, 1.0, 2.0])


def test_kmeans_groups_separated_statuses():
    statuses = np.array([0.0, 0.1, 10.0, 10.2, 10.1, 50.0])
    labels = cluster_labels(statuses, 3, seed=0)
    assert labels[0] == labels[1] and labels[2] == labels[3] == labels[4] and len(set(labels)) == 3
    assert cluster_labels(np.ones(4), 6, seed=0).tolist() == [0, 0, 0, 0]  # one distinct value


def _store(sizes):
    statuses = np.concatenate([np.full(n, 100.0 * k) + np.arange(n) * 1e-3 for k, n in enumerate(sizes)])
    return SnapshotStore(task="t", spaces={}, teacher="x", states=list(range(len(statuses))),
                         statuses=statuses, labels=cluster_labels(statuses, len(sizes), seed=0),
                         origins=[(0, i) for i in range(len(statuses))], episode_returns=[1.0])


def _config(**kw):
    return S3RLConfig(teacher="scripted", **kw)


def test_sampling_is_uniform_over_clusters_then_uniform_inside():
    sizes = [2, 10, 48]
    store = _store(sizes)
    starts = SnapshotStarts(store, _config(clusters=3), run_seed=0)
    draws = np.array([starts.sample() for _ in range(6000)])
    bounds = np.cumsum([0] + sizes)
    n = len(draws)
    for k in range(3):
        in_cluster = (draws >= bounds[k]) & (draws < bounds[k + 1])
        # binomial: p = 1/3 per cluster, 4 standard deviations
        assert abs(in_cluster.sum() - n / 3) < 4 * np.sqrt(n / 3 * (2 / 3)), (k, in_cluster.sum())
        counts = np.bincount(draws[in_cluster] - bounds[k], minlength=sizes[k])
        expected = in_cluster.sum() / sizes[k]
        assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected) + 1)


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_snapshot_episodes_start_at_saved_states_and_are_truncated_exactly(tmp_path):
    cfg = compose_train_cfg(ARM + SCRIPTED + ["snapshot.truncate_steps=7", "snapshot.snapshot_steps=70",
                                              "train.steps=100", "train.seed_steps=100", "train.eval_every=100",
                                              "train.checkpoint_every=100"])
    online.train(cfg, tmp_path / "run")
    store = SnapshotStore.load(tmp_path / "run/snapshots/store.pt")
    # scripted teacher, 2 episodes, a snapshot every 5 teacher steps from each reset on
    assert len(store) >= 2 and all(step % 5 == 0 for _, step in store.origins) and store.origins[0] == (0, 0)
    rows = [r for r in _rows(tmp_path / "run/train.csv") if r.get("episode_length")]
    replay = ReplayBuffer.load(tmp_path / "run/replay")
    obs = next(iter(replay._obs.values()))
    statuses = {round(s, 9): i for i, s in enumerate(store.statuses)}
    slot, step = 0, 0
    for row in rows:  # every episode that began before agent step 70 began at a snapshot
        assert step < 70 and float(row["snapshot_start"]) == 1.0
        length = int(float(row["episode_length"]))
        last = slot + length - 1  # the slot of the episode's last action
        # ground truth: the first observation is the saved state's, and the episode ends exactly
        # 7 steps later (truncated) unless the task ended it earlier (a success near the goal)
        index = statuses[round(float(row["snapshot_status"]), 9)]
        np.testing.assert_array_equal(obs[slot], store.states[index]["single_obs"])
        if length == 7:
            assert replay._truncated[last] and not replay._terminated[last]
        else:
            assert length < 7 and replay._terminated[last] and not replay._truncated[last]
        slot, step = slot + length + 1, step + length
    assert step >= 70 and rows  # from here the env's own reset: one episode longer than the rest of the run
    from robo_rl.loops.episodes import ResetStarts

    reset_obs = make_env(env_config(cfg.task, 0), seed=0).reset(seed=ResetStarts(cfg.seed).seed_of(len(rows)))[0]
    np.testing.assert_array_equal(obs[slot], reset_obs)
    assert not replay._truncated[slot:].any() and not replay._terminated[slot:].any()


def test_teacher_statuses_are_its_critic_values_and_a_foreign_teacher_is_refused(tmp_path):
    teacher_cfg = compose_train_cfg(SMALL_TRAIN + ["train.steps=150", "train.eval_every=150"])
    online.train(teacher_cfg, tmp_path / "teacher")
    ckpt = tmp_path / "teacher/checkpoints/latest.pt"
    student = compose_train_cfg(SMALL_TRAIN + ["snapshot=s3rl", f"snapshot.teacher={ckpt}", "snapshot.teacher_episodes=1",
                                               "snapshot.best_episodes=1", "snapshot.save_every=50",
                                               "train.steps=40", "train.seed_steps=40", "train.eval_every=40"])
    online.train(student, tmp_path / "student")
    store = SnapshotStore.load(tmp_path / "student/snapshots/store.pt")
    assert len(store) == 5  # cartpole: 250 agent steps per episode at action repeat 4
    from robo_rl.checkpoint import load_checkpoint
    from robo_rl.loops.evaluate import agent_from_checkpoint

    env = make_env(env_config(student.task, 0), seed=0)
    import torch

    teacher = agent_from_checkpoint(load_checkpoint(ckpt), ckpt, env, torch.device("cpu"))
    for state, status in zip(store.states, store.statuses):
        obs = state["single_obs"][None]
        assert status == pytest.approx(float(teacher.critic_value(obs, teacher.act(obs, eval_mode=True))[0]))
    foreign = compose_train_cfg(ARM + ["snapshot=s3rl", f"snapshot.teacher={ckpt}", "train.steps=20",
                                       "train.seed_steps=20", "train.eval_every=20", "train.checkpoint_every=20"])
    with pytest.raises(SnapshotError, match="trained on dmc/cartpole_swingup, this run trains arm/reach"):
        online.train(foreign, tmp_path / "foreign")
    assert not (tmp_path / "foreign/snapshots").exists()
    pixels = compose_train_cfg(SMALL_TRAIN + ["snapshot=s3rl", f"snapshot.teacher={ckpt}", "task.obs_type=pixels",
                                              "task.image_size=16", "train.steps=20", "train.seed_steps=20",
                                              "train.eval_every=20", "train.checkpoint_every=20"])
    with pytest.raises(SnapshotError, match="other spaces .*observation"):
        online.train(pixels, tmp_path / "pixels")


def test_snapshot_sampler_and_store_survive_a_resume(tmp_path, capfd):
    base = ARM + SCRIPTED + ["snapshot.truncate_steps=5", "train.seed_steps=200", "train.eval_every=1000",
                             "train.checkpoint_every=1000"]
    online.train(compose_train_cfg(base + ["train.steps=60"]), tmp_path / "unbroken")
    online.train(compose_train_cfg(base + ["train.steps=30"]), tmp_path / "broken")
    capfd.readouterr()

    def statuses(run):
        return [r["snapshot_status"] for r in _rows(tmp_path / run / "train.csv") if r.get("snapshot_status")]

    finished = len(statuses("broken"))  # episodes finished before the stop
    from robo_rl.checkpoint import load_checkpoint

    cut = bool(load_checkpoint(tmp_path / "broken/checkpoints/latest.pt")["mid_episode"])
    store_file = tmp_path / "broken/snapshots/store.pt"
    before = store_file.stat().st_mtime_ns
    online.train(compose_train_cfg(base + ["train.steps=60"]), tmp_path / "broken")
    assert "rolling out teacher" not in capfd.readouterr().err and store_file.stat().st_mtime_ns == before
    # The same snapshots in the same order; an episode cut by the stop is not continued (a resumed
    # run starts the next one), so its draw is the one the resumed run lacks.
    unbroken, broken = statuses("unbroken"), statuses("broken")
    expected = unbroken[:finished] + unbroken[finished + int(cut):]
    common = min(len(broken), len(expected))  # the runs' last episodes end at different steps
    assert len(unbroken) >= 12 and common > finished + 2 and broken[:common] == expected[:common]
    # resuming without the snapshot settings is refused by name
    plain = [o for o in base if not o.startswith("snapshot")]
    with pytest.raises(ValueError, match="snapshot=s3rl"):
        online.train(compose_train_cfg(plain + ["train.steps=90"]), tmp_path / "broken")
    # a changed store under a run is refused, not silently used
    other = SnapshotStore.load(store_file)
    other.statuses = other.statuses + 1.0
    other.save(store_file)
    with pytest.raises(SnapshotError, match="differs"):
        online.train(compose_train_cfg(base + ["train.steps=90"]), tmp_path / "broken")


def test_snapshot_store_of_another_run_is_reused(tmp_path):
    base = ARM + ["snapshot.truncate_steps=5", "train.steps=10", "train.seed_steps=10", "train.eval_every=10",
                  "train.checkpoint_every=10"]
    online.train(compose_train_cfg(base + SCRIPTED), tmp_path / "a")
    online.train(compose_train_cfg(base + ["snapshot=s3rl", f"snapshot.store={tmp_path / 'a/snapshots/store.pt'}"]),
                 tmp_path / "b")
    a, b = (SnapshotStore.load(tmp_path / run / "snapshots/store.pt") for run in ("a", "b"))
    np.testing.assert_array_equal(a.statuses, b.statuses)
    push = [o for o in base if not o.startswith("task=")] + ["task=arm/push"]
    with pytest.raises(SnapshotError, match="task arm/reach, this run trains arm/push"):
        online.train(compose_train_cfg(push + ["snapshot=s3rl", f"snapshot.store={tmp_path / 'a/snapshots/store.pt'}"]),
                     tmp_path / "c")


@pytest.mark.parametrize("task, extra, message", [
    ("dmc/cartpole_swingup", [], "needs snapshot.teacher=PATH"),
    ("dmc/cartpole_swingup", ["snapshot.teacher=nowhere.pt"], "snapshot.teacher nowhere.pt is not a file"),
    ("dmc/cartpole_swingup", ["snapshot.teacher=scripted"], "scripted is the arm tasks' scripted policy"),
    ("arm/reach", ["snapshot.teacher=scripted", "hardware=twin"], "a ROS 2 arm .* cannot"),
    ("arm/reach", ["snapshot.teacher=scripted", "snapshot.truncate_steps=0"], "snapshot.truncate_steps must be >= 1"),
    ("arm/reach", ["snapshot.teacher=scripted", "snapshot.status=critic"], "scripted has no critic"),
])
def test_bad_snapshot_configs_are_named(task, extra, message):
    overrides = [o for o in SMALL_TRAIN if not o.startswith("task=")] + [f"task={task}", "snapshot=s3rl"]
    with pytest.raises(ConfigError, match=message):
        check_train_config(compose_train_cfg(overrides + extra))


def test_cli_reports_a_missing_teacher_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "robo_rl.cli", "train", "snapshot=s3rl",
                             f"hydra.run.dir={tmp_path / 'x'}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "snapshot.teacher" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


@pytest.mark.parametrize("agent", ["drqv2", "drm"])
def test_snapshot_resets_compose_with_the_drq_learners(tmp_path, agent):
    cfg = compose_train_cfg(ARM + SCRIPTED + [f"agent={agent}", "snapshot.truncate_steps=6", "train.steps=60",
                                              "train.seed_steps=30", "train.eval_every=60",
                                              "train.checkpoint_every=60", "train.replay_ratio=1"])
    online.train(cfg, tmp_path / "run")
    rows = [r for r in _rows(tmp_path / "run/train.csv") if r.get("episode_length")]
    lengths = [float(r["episode_length"]) for r in rows]
    assert len(rows) >= 10 and max(lengths) == 6 and all(float(r["snapshot_start"]) == 1.0 for r in rows)
    assert any(r.get("critic_loss") for r in rows)  # it learned on snapshot episodes
