"""Update schedules: the fixed replay ratio and the adaptive one (Adaptive RR), alone and in the loop."""
from __future__ import annotations

import math

import pytest

from conftest import SMALL_TRAIN, compose_train_cfg
from robo_rl.config_schema import ConfigError, check_train_config
from robo_rl.loops import online
from robo_rl.loops.episodes import EpisodeStart, ResetStarts
from robo_rl.loops.schedule import (AdaptiveReplayRatio, AdaptiveScheduleConfig, ReplayRatioSchedule,
                                    UpdateFeedback, make_schedule)
from robo_rl.plasticity import network_fau


class ScriptedFau:
    """A FAU probe that returns the next value of a script and counts its calls."""

    def __init__(self, values):
        self.values, self.calls = list(values), 0

    def __call__(self, learner, batch, network):
        assert network == "critic"
        self.calls += 1
        return self.values.pop(0)


class _Learner:
    last_batch = None


def _feedback(step):
    return UpdateFeedback(step=step, updates=1, metrics={}, learner=_Learner(), batch_source=None)


def _run_episode(schedule, first_step, length):
    """`length` agent steps with one observe() per step that updated -> updates per step."""
    counts = []
    for step in range(first_step, first_step + length):
        n = schedule.updates_at(step)
        counts.append(n)
        if n:
            schedule.observe(_feedback(step))
    return counts


def test_adaptive_ratio_switches_once_when_the_checked_fau_settles():
    # check_every 2: reference = the first update's FAU; the updates of episodes 2, 4, 6 are averaged.
    # episode 1 (4 steps at 0.5: updates at its 2nd and 4th): 0.90 reference, then nothing measured
    # episode 2: 0.80, 0.82 -> mean 0.81, |0.81 - 0.90| = 0.09 > 0.01: stay, reference 0.81
    # episode 3: nothing measured; episode 4: 0.805, 0.809 -> 0.807, change 0.003 <= 0.01: switch
    probe = ScriptedFau([0.90, 0.80, 0.82, 0.805, 0.809])
    cfg = AdaptiveScheduleConfig(final_ratio=2.0, check_every=2, fau_threshold=0.01)
    schedule = AdaptiveReplayRatio(cfg, start_ratio=0.5, fau_probe=probe)
    step, notes = 0, []
    for episode in range(1, 5):
        counts = _run_episode(schedule, step, 4)
        assert counts == [0, 1, 0, 1]
        step += 4
        notes.append(schedule.end_episode(episode))
        if episode == 2:
            assert schedule.last_check == (2, pytest.approx(0.81)) and schedule.ratio == 0.5
    assert probe.calls == 5 and notes[:3] == [None, None, None] and "0.5 -> 2.0" in notes[3]
    assert schedule.ratio == 2.0 and schedule.switch_step == 16
    assert schedule.metrics()["replay_ratio_switch_step"] == 16
    # after the switch: two updates every step, nothing measured, never back, never again
    for episode in range(5, 9):
        assert _run_episode(schedule, step, 4) == [2, 2, 2, 2]
        step += 4
        assert schedule.end_episode(episode) is None
    assert probe.calls == 5 and schedule.ratio == 2.0 and schedule.switch_step == 16


def test_adaptive_ratio_keeps_the_low_ratio_while_the_fau_moves():
    values = [0.9] + [0.9 - 0.05 * k for k in range(1, 40)]  # every window differs by > threshold
    schedule = AdaptiveReplayRatio(AdaptiveScheduleConfig(check_every=1, fau_threshold=0.01),
                                   start_ratio=1.0, fau_probe=ScriptedFau(values))
    step = 0
    for episode in range(1, 10):
        # check_every 1: every episode's updates form a window; one update per step at ratio 1
        assert _run_episode(schedule, step, 2) == [1, 1]
        step += 2
        assert schedule.end_episode(episode) is None
    assert schedule.switch_step is None and schedule.ratio == 1.0
    assert math.isnan(schedule.metrics()["replay_ratio_switch_step"])


def test_adaptive_state_survives_a_resume_and_a_switched_run_stays_switched():
    cfg = AdaptiveScheduleConfig(check_every=1, fau_threshold=0.01)
    schedule = AdaptiveReplayRatio(cfg, 0.5, fau_probe=ScriptedFau([0.5, 0.5, 0.5]))
    _run_episode(schedule, 0, 4)
    assert schedule.end_episode(1) is not None and schedule.ratio == 2.0
    # A resumed schedule whose probe would report wildly moving FAUs: it is switched and stays so.
    resumed = AdaptiveReplayRatio(cfg, 0.5, fau_probe=ScriptedFau([]))
    resumed.load_state_dict(schedule.state_dict())
    assert _run_episode(resumed, 4, 3) == [2, 2, 2] and resumed.end_episode(2) is None
    assert resumed.switch_step == schedule.switch_step == 4
    with pytest.raises(ValueError, match="schedule=fixed"):
        resumed.load_state_dict(ReplayRatioSchedule(1.0).state_dict())
    with pytest.raises(ValueError, match="schedule=adaptive"):
        ReplayRatioSchedule(1.0).load_state_dict(schedule.state_dict())


def test_schedule_config_group_builds_the_schedule_and_rejects_bad_values():
    fixed = compose_train_cfg(SMALL_TRAIN + ["train.replay_ratio=1.5"])
    assert isinstance(make_schedule(fixed.train, fixed.schedule), ReplayRatioSchedule)
    cfg = compose_train_cfg(SMALL_TRAIN + ["schedule=adaptive", "schedule.check_every=7"])
    schedule = make_schedule(cfg.train, cfg.schedule)
    assert isinstance(schedule, AdaptiveReplayRatio)
    assert (schedule.ratio, schedule.cfg.final_ratio, schedule.cfg.check_every) == (0.5, 2.0, 7)
    # the start ratio is train.replay_ratio: a command-line value wins over the group's 0.5
    cfg = compose_train_cfg(SMALL_TRAIN + ["schedule=adaptive", "train.replay_ratio=0.25"])
    assert make_schedule(cfg.train, cfg.schedule).ratio == 0.25
    bad = compose_train_cfg(SMALL_TRAIN + ["schedule=adaptive", "schedule.check_every=0",
                                           "schedule.final_ratio=-1"])
    with pytest.raises(ConfigError, match="schedule.check_every") as error:
        check_train_config(bad)
    assert "schedule.final_ratio" in str(error.value)


def test_network_fau_is_the_share_of_positive_critic_activations():
    import torch

    from robo_rl.agents import make_agent
    from robo_rl.envs import make_env
    from robo_rl.loops.common import env_config
    from robo_rl.replay.buffer import Batch

    cfg = compose_train_cfg(SMALL_TRAIN)
    env = make_env(env_config(cfg.task, 0), seed=0)
    agent = make_agent(cfg.agent, env.observation_space, env.action_space, torch.device("cpu"))
    obs = torch.randn(16, env.observation_space.shape[0])
    zeros = torch.zeros(16, 1)
    batch = Batch(obs=obs, action=torch.rand(16, env.action_space.shape[0]) * 2 - 1, reward=zeros,
                  discount=zeros, next_obs=obs)
    activations = {name: m for name, m in agent.probes().items()
                   if name.startswith("critic.") and isinstance(m, torch.nn.ReLU)}
    outputs = []
    handles = [m.register_forward_hook(lambda mod, i, o: outputs.append(o.detach())) for m in activations.values()]
    agent.probe_forward(batch)
    for handle in handles:
        handle.remove()
    expected = sum(int((o > 0).sum()) for o in outputs) / sum(o.numel() for o in outputs)
    assert activations and network_fau(agent, batch, "critic") == pytest.approx(expected)
    with pytest.raises(KeyError, match="no activation"):
        network_fau(agent, batch, "value")


class _Starts(ResetStarts):
    """Every episode truncated after 10 agent steps: many episodes in a short run."""

    def start(self, env, episode, step):
        begin = super().start(env, episode, step)
        return EpisodeStart(begin.obs, begin.info, step_limit=10)


REAL_MAKE_AGENT = online.make_agent


def _count_updates(monkeypatch, per_step):
    real = REAL_MAKE_AGENT

    def counting_agent(*args, **kwargs):
        agent = real(*args, **kwargs)
        update = agent.update

        def counted(source, step):
            per_step[step] = per_step.get(step, 0) + 1
            return update(source, step)

        agent.update = counted
        return agent

    monkeypatch.setattr(online, "make_agent", counting_agent)


def _scripted_adaptive(cfg, values):
    # Episodes of 10 steps, seed steps 0-19, one update every 2nd step from step 21, check_every 2:
    # the first update (step 21) gives the reference 0.9; the window of episode 4 (steps 31-39:
    # 0.8 0.7 0.6 0.5 0.5) moves by 0.28, episode 6's (0.5 x 5) by 0.12, episode 8's by 0 -> the
    # switch comes after step 79.
    return AdaptiveReplayRatio(AdaptiveScheduleConfig(check_every=2, fau_threshold=0.001), 0.5,
                               seed_steps=int(cfg.train.seed_steps),
                               fau_probe=lambda learner, batch, network: next(values))


def _fau_script():
    return iter([0.9, 0.8, 0.7, 0.6] + [0.5] * 1000)


def test_the_loop_runs_the_schedules_updates_per_step_before_and_after_the_switch_and_across_a_resume(
        tmp_path, monkeypatch):
    overrides = SMALL_TRAIN + ["train.seed_steps=20", "train.eval_every=1000", "train.checkpoint_every=1000",
                               "schedule=adaptive", "agent.batch_size=16"]
    unbroken_counts: dict[int, int] = {}
    _count_updates(monkeypatch, unbroken_counts)
    cfg = compose_train_cfg(overrides + ["train.steps=120"])
    schedule = _scripted_adaptive(cfg, _fau_script())
    online.train(cfg, tmp_path / "unbroken", episode_starts=_Starts(cfg.seed), schedule=schedule)
    switch = schedule.switch_step
    assert switch == 80
    for step in range(120):
        expected = 0 if step < 20 else (2 if step >= switch else (step - 20) % 2)
        assert unbroken_counts.get(step, 0) == expected, step

    # The same run stopped at step 70, before the switch (a checkpoint is written at the end), and
    # resumed to 120 with a fresh schedule object: the FAU script goes on where it stopped, and the
    # reference, the open window and the ratio's credit come from the checkpoint.
    broken_counts: dict[int, int] = {}
    _count_updates(monkeypatch, broken_counts)
    script = _fau_script()
    first = compose_train_cfg(overrides + ["train.steps=70"])
    online.train(first, tmp_path / "broken", episode_starts=_Starts(first.seed),
                 schedule=_scripted_adaptive(first, script))
    second = compose_train_cfg(overrides + ["train.steps=120"])
    resumed = _scripted_adaptive(second, script)
    online.train(second, tmp_path / "broken", episode_starts=_Starts(second.seed), schedule=resumed)
    assert resumed.switch_step == switch and broken_counts == unbroken_counts
    header, *rows = (tmp_path / "unbroken/train.csv").read_text().strip().splitlines()
    columns = header.split(",")
    ratios = [float(r.split(",")[columns.index("replay_ratio")]) for r in rows]
    assert ratios[0] == 0.5 and ratios[-1] == 2.0 and sorted(ratios) == ratios  # logged, one way
