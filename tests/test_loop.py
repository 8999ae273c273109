"""Training-loop behaviour: resume continues exactly, NaN stops the run with the replay intact,
the replay-ratio schedule spreads updates evenly."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import SMALL_TRAIN, compose_train_cfg
from robo_rl.agents import make_agent
from robo_rl.checkpoint import load_checkpoint
from robo_rl.envs import make_env
from robo_rl.loops import online
from robo_rl.loops.common import env_config
from robo_rl.loops.schedule import ReplayRatioSchedule
from robo_rl.replay import ReplayBuffer

# Checkpoints at episode boundaries (cartpole: 250 agent steps at action repeat 4) so that an
# interrupted + resumed run sees exactly the episodes an uninterrupted run sees.
RESUME = SMALL_TRAIN + ["train.eval_every=250", "train.checkpoint_every=250", "train.seed_steps=100"]


def _agent_from(ckpt_path, cfg):
    payload = load_checkpoint(ckpt_path)
    env = make_env(env_config(cfg.task, 0), seed=0)
    agent = make_agent(cfg.agent, env.observation_space, env.action_space, torch.device("cpu"))
    agent.load_state_dict(payload["agent"])
    return agent, payload, env


def test_resume_continues_exactly_where_an_uninterrupted_run_goes(tmp_path):
    full = compose_train_cfg(RESUME + ["train.steps=500"])
    online.train(full, tmp_path / "full")

    first = compose_train_cfg(RESUME + ["train.steps=250"])
    online.train(first, tmp_path / "split")
    saved_agent, saved, env = _agent_from(tmp_path / "split/checkpoints/latest.pt", first)
    fixed_obs = np.stack([env.observation_space.sample() for _ in range(4)]).astype(np.float32)
    saved_actions = [saved_agent.act(o, eval_mode=True) for o in fixed_obs]

    second = compose_train_cfg(RESUME + ["train.steps=500", "resume=true"])
    # The restored agent acts exactly like the saved one before any new update.
    resumed_agent, _, _ = _agent_from(tmp_path / "split/checkpoints/latest.pt", second)
    for o, a in zip(fixed_obs, saved_actions):
        np.testing.assert_array_equal(resumed_agent.act(o, eval_mode=True), a)
    online.train(second, tmp_path / "split")

    a_full, p_full, _ = _agent_from(tmp_path / "full/checkpoints/latest.pt", full)
    a_split, p_split, _ = _agent_from(tmp_path / "split/checkpoints/latest.pt", second)
    assert p_split["step"] == p_full["step"] == 500
    assert saved["step"] == 250
    # Counters and optimizer state continued rather than restarting.
    assert p_split["agent"]["critic_optimizer"]["state"][0]["step"] == p_full["agent"]["critic_optimizer"]["state"][0]["step"]
    replay = ReplayBuffer.load(tmp_path / "split/replay")
    assert len(replay) == 500
    for o in fixed_obs:
        np.testing.assert_allclose(a_split.act(o, eval_mode=True), a_full.act(o, eval_mode=True), atol=1e-6)


class _NaNAfter:
    """Wraps an agent so that its action turns NaN at a given call."""

    def __init__(self, agent, at_call):
        self.agent, self.at_call, self.calls = agent, at_call, 0

    def __getattr__(self, name):
        return getattr(self.agent, name)

    def act(self, obs, step=None, eval_mode=False):
        action = self.agent.act(obs, step=step, eval_mode=eval_mode)
        if not eval_mode:
            self.calls += 1
            if self.calls == self.at_call:
                action = np.full_like(action, np.nan)
        return action


def test_nan_action_stops_with_step_named_and_replay_intact(tmp_path, monkeypatch):
    cfg = compose_train_cfg(SMALL_TRAIN + ["train.seed_steps=50", "train.eval_every=1000"])
    real = online.make_agent
    monkeypatch.setattr(online, "make_agent", lambda *a, **k: _NaNAfter(real(*a, **k), at_call=30))
    with pytest.raises(online.NonFiniteError, match="step 79"):
        online.train(cfg, tmp_path / "run")
    replay = ReplayBuffer.load(tmp_path / "run/replay")
    assert len(replay) == 79  # every finite transition before the NaN, none after


def test_nan_observation_stops_with_step_named(tmp_path, monkeypatch):
    cfg = compose_train_cfg(SMALL_TRAIN + ["train.eval_every=1000"])
    real = online.make_env
    calls = {"n": 0}
    made = []

    def make_env_with_bad_sensor(*args, **kwargs):
        env = real(*args, **kwargs)
        made.append(env)
        if len(made) > 1:  # the second env is the eval env: leave it healthy
            return env
        step = env.step

        def bad_step(action):
            obs, r, term, trunc, info = step(action)
            calls["n"] += 1
            if calls["n"] == 40:
                obs = np.full_like(obs, np.nan)
            return obs, r, term, trunc, info

        env.step = bad_step
        return env

    monkeypatch.setattr(online, "make_env", make_env_with_bad_sensor)
    with pytest.raises(online.NonFiniteError, match="step 39"):
        online.train(cfg, tmp_path / "run")
    assert len(ReplayBuffer.load(tmp_path / "run/replay")) == 39


@pytest.mark.parametrize("ratio,expected", [(0.5, [0, 1, 0, 1]), (1.0, [1, 1, 1, 1]), (2.0, [2, 2, 2, 2]),
                                            (1.5, [1, 2, 1, 2])])
def test_replay_ratio_schedule(ratio, expected):
    schedule = ReplayRatioSchedule(ratio, seed_steps=2)
    assert [schedule.updates_at(s) for s in range(2)] == [0, 0]
    assert [schedule.updates_at(s) for s in range(2, 6)] == expected


def test_replay_ratio_must_be_positive():
    with pytest.raises(ValueError, match="replay_ratio"):
        ReplayRatioSchedule(0.0)


def test_replay_left_without_a_checkpoint_is_kept_not_overwritten(tmp_path):
    import shutil

    cfg = compose_train_cfg(SMALL_TRAIN + ["train.steps=150", "train.eval_every=1000"])
    online.train(cfg, tmp_path / "run")
    shutil.rmtree(tmp_path / "run/checkpoints")  # as if the run died before any checkpoint
    with pytest.warns(UserWarning, match="no checkpoint"):
        online.train(cfg, tmp_path / "run")
    assert len(ReplayBuffer.load(tmp_path / "run/replay")) == 300


def test_a_crash_in_the_update_keeps_every_collected_transition(tmp_path, monkeypatch):
    cfg = compose_train_cfg(SMALL_TRAIN + ["train.seed_steps=50", "train.eval_every=1000"])
    real = online.make_agent

    def failing_agent(*args, **kwargs):
        agent = real(*args, **kwargs)
        calls = {"n": 0}
        update = agent.update

        def update_then_crash(source, step):
            calls["n"] += 1
            if calls["n"] == 20:
                raise RuntimeError("simulated CUDA out of memory")
            return update(source, step)

        agent.update = update_then_crash
        return agent

    monkeypatch.setattr(online, "make_agent", failing_agent)
    with pytest.raises(RuntimeError, match="out of memory"):
        online.train(cfg, tmp_path / "run")
    # The crash came in the update after the 70th transition was stored (updates start at step 50).
    assert len(ReplayBuffer.load(tmp_path / "run/replay")) == 70


def test_resume_with_another_network_size_is_a_clear_error(tmp_path):
    from robo_rl.checkpoint import CheckpointError

    online.train(compose_train_cfg(SMALL_TRAIN + ["train.steps=120", "train.eval_every=1000"]), tmp_path / "run")
    config_before = (tmp_path / "run/config.yaml").read_text()
    bigger = compose_train_cfg(SMALL_TRAIN + ["train.steps=200", "agent.hidden_dims=[64,64]"])
    with pytest.raises(CheckpointError, match="does not fit the config's agent"):
        online.train(bigger, tmp_path / "run")
    assert (tmp_path / "run/config.yaml").read_text() == config_before
