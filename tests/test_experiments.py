"""Runs are independent experiments that resume exactly: seeds, demo sources, resume guards, and the
loop's seams (update schedule feedback, episode-start sources)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import SMALL_TRAIN, compose_train_cfg
from robo_rl.agents import make_agent
from robo_rl.checkpoint import CheckpointError, load_checkpoint
from robo_rl.envs import make_env
from robo_rl.loops import online
from robo_rl.loops.common import env_config
from robo_rl.loops.episodes import EpisodeStart, ResetStarts
from robo_rl.loops.schedule import ReplayRatioSchedule
from robo_rl.replay import ReplayBuffer
from robo_rl.seeding import EVAL_EPISODES, TRAIN_EPISODES, episode_seed, eval_seeds, stream_seed

QUICK = SMALL_TRAIN + ["train.eval_every=1000", "train.checkpoint_every=1000"]


def _start_states(env, seeds):
    return {env.reset(seed=s)[0].tobytes() for s in seeds}


def test_run_seeds_0_to_9_share_no_episode_start_state():
    """Ground truth: the start states the env actually produces, not the seed numbers."""
    env = make_env({"name": "dmc/cartpole_swingup"}, seed=0)
    episodes = 20
    seen: dict[bytes, tuple] = {}
    for run_seed in range(10):
        starts = ResetStarts(run_seed)
        train = [env.reset(seed=starts.seed_of(e))[0].tobytes() for e in range(episodes)]
        evals = [env.reset(seed=s)[0].tobytes() for s in eval_seeds(run_seed, 5)]
        for kind, states in (("train", train), ("eval", evals)):
            for i, state in enumerate(states):
                assert state not in seen, f"run {run_seed} {kind} episode {i} repeats {seen[state]}"
                seen[state] = (run_seed, kind, i)
    assert len(seen) == 10 * (episodes + 5)
    # The scheme this replaced (seed + episode) fails the same check at once:
    old_run0 = _start_states(env, [0 + e for e in range(episodes)])
    old_run1 = _start_states(env, [1 + e for e in range(episodes)])
    assert len(old_run0 & old_run1) == episodes - 1
    env.close()


def test_streams_are_distinct_and_reproducible():
    assert stream_seed(3, TRAIN_EPISODES, 7) == stream_seed(3, TRAIN_EPISODES, 7)
    values = {episode_seed(s, stream, i) for s in range(5) for stream in (TRAIN_EPISODES, EVAL_EPISODES)
              for i in range(50)}
    assert len(values) == 5 * 2 * 50
    assert all(0 <= v < 2 ** 32 for v in values)
    with pytest.raises(ValueError, match="seed"):
        stream_seed(-1, TRAIN_EPISODES)


def _write_demos(directory, n_step, gamma, episodes=4):
    env = make_env(env_config(compose_train_cfg(SMALL_TRAIN).task, 0), seed=0)
    demos = ReplayBuffer(env.observation_space, env.action_space, capacity=5000, n_step=n_step, gamma=gamma,
                         directory=directory, chunk_size=64)
    rng = np.random.default_rng(0)
    for e in range(episodes):
        obs, _ = env.reset(seed=1000 + e)
        demos.reset(obs)
        done = False
        while not done:
            action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            obs, reward, terminated, truncated, _ = env.step(action)
            demos.add(action, reward, obs, terminated, truncated)
            done = terminated or truncated
    demos.flush()
    env.close()


def test_demos_are_sampled_with_the_agents_n_step_and_gamma(tmp_path, monkeypatch):
    _write_demos(tmp_path / "demos", n_step=1, gamma=0.5)
    cfg = compose_train_cfg(QUICK + ["train.steps=150", "train.seed_steps=100", "agent.n_step=3",
                                     "agent.gamma=0.99", f"replay.demo_dir={tmp_path / 'demos'}",
                                     "replay.demo_fraction=0.5"])
    seen = []
    real = online.make_agent

    def spying_agent(*args, **kwargs):
        agent = real(*args, **kwargs)
        update = agent.update

        def update_and_look(source, step):
            seen.append(source.sample(256).discount.numpy())
            return update(source, step)

        agent.update = update_and_look
        return agent

    monkeypatch.setattr(online, "make_agent", spying_agent)
    online.train(cfg, tmp_path / "run")
    discounts = np.concatenate(seen)
    allowed = np.array([0.0, 0.99, 0.99 ** 2, 0.99 ** 3], np.float32)
    assert np.all(np.min(np.abs(discounts[:, None] - allowed[None]), axis=1) < 1e-6), np.unique(discounts)
    assert np.isclose(discounts, 0.99 ** 3).mean() > 0.5  # most windows are full 3-step windows


def test_resumed_run_with_demos_equals_an_unbroken_one(tmp_path):
    _write_demos(tmp_path / "demos", n_step=1, gamma=0.99)
    base = SMALL_TRAIN + ["train.eval_every=250", "train.checkpoint_every=250", "train.seed_steps=100",
                          f"replay.demo_dir={tmp_path / 'demos'}"]
    online.train(compose_train_cfg(base + ["train.steps=500"]), tmp_path / "full")
    online.train(compose_train_cfg(base + ["train.steps=250"]), tmp_path / "split")
    online.train(compose_train_cfg(base + ["train.steps=500", "resume=true"]), tmp_path / "split")
    full = load_checkpoint(tmp_path / "full/checkpoints/latest.pt")
    split = load_checkpoint(tmp_path / "split/checkpoints/latest.pt")
    assert full["demo_replay"]["rng"] == split["demo_replay"]["rng"]  # the demo sampler continued
    env = make_env({"name": "dmc/cartpole_swingup", "action_repeat": 4}, seed=0)
    cfg = compose_train_cfg(base)
    agents = []
    for payload in (full, split):
        agent = make_agent(cfg.agent, env.observation_space, env.action_space, torch.device("cpu"))
        agent.load_state_dict(payload["agent"])
        agents.append(agent)
    obs = np.stack([env.observation_space.sample() for _ in range(4)]).astype(np.float32)
    for o in obs:
        np.testing.assert_allclose(agents[0].act(o, eval_mode=True), agents[1].act(o, eval_mode=True), atol=1e-6)


def test_resume_without_a_persisted_replay_is_an_error_unless_asked_for(tmp_path):
    cfg = compose_train_cfg(QUICK + ["train.steps=120", "replay.persist=false"])
    online.train(cfg, tmp_path / "run")
    longer = compose_train_cfg(QUICK + ["train.steps=160", "replay.persist=false"])
    with pytest.raises(CheckpointError, match="resume_without_replay"):
        online.train(longer, tmp_path / "run")
    assert load_checkpoint(tmp_path / "run/checkpoints/latest.pt")["step"] == 120  # untouched
    opted_in = compose_train_cfg(QUICK + ["train.steps=160", "replay.persist=false",
                                          "replay.resume_without_replay=true"])
    assert online.train(opted_in, tmp_path / "run").steps == 160


class _RecordingSchedule(ReplayRatioSchedule):
    """A fixed ratio that records the feedback the loop gives it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.observed, self.episodes = [], []

    def observe(self, feedback):
        assert feedback.learner.probes() and feedback.batch_source.sample(4) is not None  # it can probe
        self.observed.append((feedback.step, dict(feedback.metrics)))

    def end_episode(self, episode):
        self.episodes.append(episode)


def test_schedule_is_told_each_updates_metrics_and_each_episode_end(tmp_path, monkeypatch):
    cfg = compose_train_cfg(QUICK + ["train.steps=300", "train.seed_steps=100", "train.replay_ratio=0.5"])
    schedule = _RecordingSchedule(ratio=0.5, seed_steps=100)
    counts = {"updates": 0}
    real = online.make_agent

    def counting_agent(*args, **kwargs):
        agent = real(*args, **kwargs)
        update = agent.update

        def counted(source, step):
            counts["updates"] += 1
            return update(source, step)

        agent.update = counted
        return agent

    monkeypatch.setattr(online, "make_agent", counting_agent)
    online.train(cfg, tmp_path / "run", schedule=schedule)
    assert counts["updates"] == 100  # 200 learning steps at ratio 0.5
    assert [s for s, _ in schedule.observed] == list(range(101, 300, 2))
    assert all("critic_loss" in m for _, m in schedule.observed)
    assert schedule.episodes == [1]  # cartpole: 250 agent steps per episode at action repeat 4


class _ShortStarts(ResetStarts):
    """An episode-start source that truncates every episode after 30 agent steps (S3RL-style)."""

    def start(self, env, episode, step):
        begin = super().start(env, episode, step)
        return EpisodeStart(begin.obs, begin.info, step_limit=30)


def test_episode_start_source_sets_where_and_how_long_episodes_run(tmp_path):
    cfg = compose_train_cfg(QUICK + ["train.steps=120", "train.seed_steps=120"])
    online.train(cfg, tmp_path / "run", episode_starts=_ShortStarts(cfg.seed))
    rows = (tmp_path / "run/train.csv").read_text().strip().splitlines()
    header = rows[0].split(",")
    lengths = [float(r.split(",")[header.index("episode_length")]) for r in rows[1:]]
    assert lengths == [30.0, 30.0, 30.0, 30.0]
    replay = ReplayBuffer.load(tmp_path / "run/replay")
    assert int(replay._truncated.sum()) == 4
    # The first observation of every episode is the reset state of that episode's own seed.
    env = make_env(env_config(cfg.task, 0), seed=0)
    starts = ResetStarts(cfg.seed)
    for episode in range(4):
        np.testing.assert_array_equal(next(iter(replay._obs.values()))[episode * 31],
                                      env.reset(seed=starts.seed_of(episode))[0])


def test_resume_with_another_run_seed_is_refused():
    starts = ResetStarts(3)
    with pytest.raises(ValueError, match="run seed 3"):
        ResetStarts(4).load_state_dict(starts.state_dict())


def test_resume_that_adds_or_drops_demos_is_refused(tmp_path):
    _write_demos(tmp_path / "demos", n_step=1, gamma=0.99, episodes=1)
    online.train(compose_train_cfg(QUICK + ["train.steps=120"]), tmp_path / "plain")
    with pytest.raises(CheckpointError, match="without demos"):
        online.train(compose_train_cfg(QUICK + ["train.steps=160", f"replay.demo_dir={tmp_path / 'demos'}"]),
                     tmp_path / "plain")
    online.train(compose_train_cfg(QUICK + ["train.steps=120", f"replay.demo_dir={tmp_path / 'demos'}"]),
                 tmp_path / "mixed")
    with pytest.raises(CheckpointError, match="with demos"):
        online.train(compose_train_cfg(QUICK + ["train.steps=160"]), tmp_path / "mixed")


def test_demos_without_costs_are_refused_by_a_constrained_run(tmp_path):
    # demos recorded on an arm task without costs, a constrained run needs them
    env = make_env({"name": "arm/reach", "options": {"energy_tank": True}}, seed=0)
    demos = ReplayBuffer(env.observation_space, env.action_space, capacity=500, directory=tmp_path / "demos",
                         chunk_size=64)
    obs, _ = env.reset(seed=0)
    demos.reset(obs)
    for _ in range(5):
        action = env.action_space.sample()
        obs, reward, terminated, truncated, _ = env.step(action)
        demos.add(action, reward, obs, terminated, truncated)
    demos.flush()
    env.close()
    cfg = compose_train_cfg(QUICK + ["task=arm/reach", "constraint=energy", "train.steps=20",
                                     f"replay.demo_dir={tmp_path / 'demos'}"])
    with pytest.raises(ValueError, match="per-step costs"):
        online.train(cfg, tmp_path / "run")


def test_eval_reads_a_checkpoint_whose_stored_config_uses_old_keys(tmp_path):
    """Checkpoints written before the utd -> critic_steps_per_update rename (and before task
    options) still evaluate."""
    from robo_rl.checkpoint import save_checkpoint
    from robo_rl.config_schema import EvalRunConfig
    from robo_rl.loops.evaluate import run_eval
    from omegaconf import OmegaConf

    online.train(compose_train_cfg(QUICK + ["train.steps=110"]), tmp_path / "run")
    path = tmp_path / "run/checkpoints/latest.pt"
    payload = load_checkpoint(path)
    payload["config"]["agent"]["utd"] = payload["config"]["agent"].pop("critic_steps_per_update")
    del payload["config"]["task"]["options"]
    payload["config"]["train"]["eval_seed_offset"] = 100000
    save_checkpoint(path, payload)
    cfg = OmegaConf.structured(EvalRunConfig(checkpoint=str(path), episodes=1, device="cpu", threads=1))
    with pytest.warns(UserWarning, match="old key 'utd'"):
        report = run_eval(cfg)
    assert "over 1 episodes" in report


def test_a_run_stopped_mid_episode_resumes_with_a_fresh_episode_start(tmp_path):
    """The interrupted episode's transitions stay; the resumed run does not replay its start."""
    online.train(compose_train_cfg(QUICK + ["train.steps=100"]), tmp_path / "run")   # 250-step episodes
    assert load_checkpoint(tmp_path / "run/checkpoints/latest.pt")["mid_episode"] is True
    cfg = compose_train_cfg(QUICK + ["train.steps=130"])
    online.train(cfg, tmp_path / "run")
    replay = ReplayBuffer.load(tmp_path / "run/replay")
    frames = next(iter(replay._obs.values()))
    env = make_env(env_config(cfg.task, 0), seed=0)
    starts = ResetStarts(cfg.seed)
    np.testing.assert_array_equal(frames[0], env.reset(seed=starts.seed_of(0))[0])
    np.testing.assert_array_equal(frames[101], env.reset(seed=starts.seed_of(1))[0])  # not seed_of(0)
    assert len(replay) == 130
