"""Datasets (robo_rl.offline): what `robo-rl collect` records is what the simulator did, round trips
(own format, Minari) are exact, malformed data is refused by field and row without touching the
file, a stopped collection resumes to the unbroken one, and medium-replay / medium-expert hold
exactly the episodes they should."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from robo_rl.config_schema import compose_collect_config
from robo_rl.envs import make_env
from robo_rl.loops.common import env_config
from robo_rl.offline import collect as collect_module
from robo_rl.offline.collect import collect
from robo_rl.offline.dataset import (DatasetError, DatasetInfo, concatenate, open_dataset, read_episodes, read_info,
                                     read_slots, validate_dataset, write_dataset)
from robo_rl.replay.storage import list_chunks, read_chunk, spec_to_space, write_chunk
from robo_rl.seeding import COLLECT_EPISODES, episode_seed
from tests.conftest import compose_train_cfg, episodes_equal, run_cli, tree_snapshot

TASK = "gym/InvertedPendulum-v5"  # fast, state, 1000-step limit; random episodes last ~5-20 steps


def collect_cfg(out, *extra):
    return compose_collect_config([f"task={TASK}", "policy=random", "steps=300", f"out={out}", "progress=false",
                                   "reference.expert_return=1000", "reference.episodes=2", "chunk_size=64",
                                   *extra])


def task_env():
    return make_env(env_config(compose_train_cfg([f"task={TASK}"]).task, 0), seed=0)


@pytest.fixture(scope="module")
def random_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "random"
    return out, collect(collect_cfg(out))


def test_collected_episodes_are_what_the_simulator_does(random_dataset):
    out, info = random_dataset
    episodes = list(read_episodes(out))
    assert info.complete and info.transitions >= 300 and info.episodes == len(episodes)
    assert sum(len(e) for e in episodes) == info.transitions
    np.testing.assert_allclose(info.returns, [e.rewards.sum() for e in episodes], rtol=1e-6)
    env = task_env()
    for index in (0, len(episodes) - 1):  # replay the stored actions from the episode's own start seed
        episode = episodes[index]
        obs, _ = env.reset(seed=episode_seed(0, COLLECT_EPISODES, index))
        np.testing.assert_array_equal(obs, episode.observations[0])
        for t, action in enumerate(episode.actions):
            obs, reward, terminated, truncated, _ = env.step(action)
            np.testing.assert_array_equal(obs, episode.observations[t + 1])
            assert np.float32(reward) == episode.rewards[t]
            assert (terminated, truncated) == (episode.terminations[t], episode.truncations[t])
    env.close()
    assert info.random_return < 0.5 * info.expert_return  # measured reference, given expert


def test_own_format_round_trip_is_exact(random_dataset, tmp_path):
    out, info = random_dataset
    meta, _ = read_slots(out)
    copy = write_dataset(tmp_path / "copy", read_episodes(out), spec_to_space(meta["observation_space"]),
                         spec_to_space(meta["action_space"]), DatasetInfo(task=info.task, kind=info.kind))
    episodes_equal(list(read_episodes(out)), list(read_episodes(tmp_path / "copy")))
    assert copy.transitions == info.transitions and copy.returns == info.returns


def test_minari_round_trip_is_exact(random_dataset, tmp_path):
    pytest.importorskip("minari")
    from robo_rl.offline.minari_io import export_minari, import_minari

    out, info = random_dataset
    export_minari(out, "robo_rl/pendulum/random-v0", root=tmp_path / "minari")
    env = task_env()
    back = import_minari("robo_rl/pendulum/random-v0", tmp_path / "back", TASK, env.observation_space,
                         env.action_space, root=tmp_path / "minari")
    env.close()
    episodes_equal(list(read_episodes(out)), list(read_episodes(tmp_path / "back")))
    assert (back.random_return, back.expert_return, back.kind) == (info.random_return, info.expert_return, info.kind)


def test_minari_import_names_a_wrong_field(random_dataset, tmp_path):
    pytest.importorskip("minari")
    from gymnasium import spaces

    from robo_rl.offline.minari_io import export_minari, import_minari

    out, _ = random_dataset
    export_minari(out, "robo_rl/pendulum/random-v0", root=tmp_path / "minari")
    env = task_env()
    wide = spaces.Box(-np.inf, np.inf, (env.observation_space.shape[0] + 1,), np.float32)
    with pytest.raises(DatasetError, match=r"observations have shape \(4,\) per row.*\(5,\)"):
        import_minari("robo_rl/pendulum/random-v0", tmp_path / "x", TASK, wide, env.action_space, root=tmp_path / "minari")
    double = spaces.Box(-1, 1, env.action_space.shape, np.float64)
    with pytest.raises(DatasetError, match="actions have dtype float32.*float64.*--cast"):
        import_minari("robo_rl/pendulum/random-v0", tmp_path / "y", TASK, env.observation_space, double,
                      root=tmp_path / "minari")
    env.close()
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def _corrupt(directory, field, row, value):
    chunks = list_chunks(directory)
    data = read_chunk(chunks[0][1])
    data[field] = data[field].copy()
    data[field][row] = value
    write_chunk(chunks[0][1], data)


def test_malformed_datasets_are_refused_by_field_and_row_and_left_unchanged(random_dataset, tmp_path):
    out, _ = random_dataset
    env = task_env()
    episodes = list(read_episodes(out))
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    row = len(episodes[0]) + 1 + 2  # episode 1, step 2
    _corrupt(bad, "reward", row, np.nan)
    before = tree_snapshot(bad)
    with pytest.raises(DatasetError, match=rf"rewards holds NaN/inf at row {row} \(episode 1, step 2\)"):
        open_dataset(bad, env.observation_space, env.action_space, TASK, 1, 0.99, seed=0)
    assert tree_snapshot(bad) == before

    shutil.rmtree(bad)
    shutil.copytree(out, bad)
    _corrupt(bad, "obs__obs", 3, np.inf)
    with pytest.raises(DatasetError, match=r"observations holds NaN/inf at row 3 \(episode 0, step 3\)"):
        validate_dataset(bad, env.observation_space, env.action_space, TASK)

    from gymnasium import spaces
    other = spaces.Box(-np.inf, np.inf, (7,), np.float32)
    with pytest.raises(DatasetError, match=r"observations shape is \[4\] in the dataset but \[7\] in the task"):
        validate_dataset(out, other, env.action_space, TASK)
    wrong_dtype = spaces.Box(-1, 1, env.action_space.shape, np.float64)
    with pytest.raises(DatasetError, match="actions dtype is float32 in the dataset but float64"):
        validate_dataset(out, env.observation_space, wrong_dtype, TASK)
    with pytest.raises(DatasetError, match="collected on gym/InvertedPendulum-v5"):
        validate_dataset(out, env.observation_space, env.action_space, "gym/Hopper-v5")
    env.close()


def test_a_stopped_collection_resumes_to_the_unbroken_one(random_dataset, tmp_path, monkeypatch):
    out, info = random_dataset
    broken = tmp_path / "broken"
    real_flush_count = {"n": 0}
    original = collect_module._rollouts

    def crash_after_three_episodes(cfg, env, policy, buffer, info, path):
        flush = buffer.flush

        def counted():
            flush()
            real_flush_count["n"] += 1
            if real_flush_count["n"] == 3:
                raise KeyboardInterrupt
        buffer.flush = counted
        original(cfg, env, policy, buffer, info, path)

    monkeypatch.setattr(collect_module, "_rollouts", crash_after_three_episodes)
    with pytest.raises(KeyboardInterrupt):
        collect(collect_cfg(broken))
    monkeypatch.setattr(collect_module, "_rollouts", original)
    assert not read_info(broken).complete
    with pytest.raises(DatasetError, match="still being collected"):
        env = task_env()
        try:
            validate_dataset(broken, env.observation_space, env.action_space, TASK)
        finally:
            env.close()
    with pytest.raises(DatasetError, match="other settings"):
        collect(collect_cfg(broken, "seed=1"))
    resumed = collect(collect_cfg(broken))
    episodes_equal(list(read_episodes(out)), list(read_episodes(broken)))
    assert resumed.returns == info.returns
    with pytest.raises(DatasetError, match="already holds a complete dataset"):
        collect(collect_cfg(broken))


def test_medium_replay_holds_the_runs_episodes_up_to_the_checkpoint(random_dataset, tmp_path):
    import torch

    from robo_rl.checkpoint import save_checkpoint

    out, _ = random_dataset
    run = tmp_path / "run"
    shutil.copytree(out, run / "replay")  # a run's replay directory (the same chunk format)
    episodes = list(read_episodes(out))
    upto = sum(len(e) + 1 for e in episodes[:5]) + 3  # the checkpoint saw 5 episodes and 2 steps of the 6th
    save_checkpoint(run / "checkpoints" / "step_00000100.pt", {"step": 100, "replay": {"num_slots_written": upto},
                                                                 "torch_rng": torch.get_rng_state()})
    medium_replay = collect(collect_cfg(tmp_path / "mr", f"policy=replay:{run}/checkpoints/step_00000100.pt",
                                        "kind=medium-replay", "reference.random_return=0"))
    episodes_equal(episodes[:5], list(read_episodes(tmp_path / "mr")))
    assert medium_replay.kind == "medium-replay" and medium_replay.source["upto_slot"] == upto


def test_medium_expert_is_the_concatenation_and_references_must_agree(random_dataset, tmp_path):
    out, info = random_dataset
    second = collect(collect_cfg(tmp_path / "b", "seed=3", "steps=100", f"reference.random_return={info.random_return}"))
    both = concatenate([out, tmp_path / "b"], tmp_path / "ab", kind="medium-expert")
    episodes_equal(list(read_episodes(out)) + list(read_episodes(tmp_path / "b")), list(read_episodes(tmp_path / "ab")))
    assert both.transitions == info.transitions + second.transitions
    collect(collect_cfg(tmp_path / "c", "seed=4", "steps=50", "reference.random_return=-5"))
    with pytest.raises(DatasetError, match="random_return differ"):
        concatenate([out, tmp_path / "c"], tmp_path / "ac", kind="medium-expert")
    assert not (tmp_path / "ac").exists()


def test_normalised_score_by_hand():
    info = DatasetInfo(task="t", kind="k", random_return=-20.0, expert_return=180.0)
    assert info.normalized_score(-20.0) == 0.0 and info.normalized_score(180.0) == 100.0
    assert info.normalized_score(30.0) == 25.0
    assert DatasetInfo(task="t", kind="k").normalized_score(1.0) is None


def test_cli_collect_and_dataset_errors_are_one_line(random_dataset, tmp_path):
    out, _ = random_dataset
    result = run_cli("collect", f"task={TASK}", "policy=nowhere.pt", f"out={tmp_path / 'x'}")
    assert result.returncode == 2 and "policy=nowhere.pt" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("collect", f"task={TASK}", f"out={tmp_path / 'x'}")
    assert result.returncode == 2 and "reference.expert is not set" in result.stderr
    result = run_cli("dataset", "info", str(out))
    assert result.returncode == 0 and "transitions" in result.stdout
    result = run_cli("dataset", "info", str(tmp_path / "missing"))
    assert result.returncode == 2 and "does not exist" in result.stderr and "Traceback" not in result.stderr
