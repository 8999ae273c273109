"""Update schedules: how many learner updates to run after each agent step.

The loop asks the schedule (``updates_at(step)``) instead of using a constant, and tells it what
happened (``observe(UpdateFeedback)`` after the step's updates: the last update's metrics, and
the learner and batch source to probe; ``end_episode(episode)`` at each episode end), so an adaptive replay ratio
(e.g. switching on the critic's fraction of active units) and remote learners plug in without
touching the loop. "Learner updates per agent step" is called the replay ratio everywhere
(``train.replay_ratio``); what one update does (e.g. SAC's ``critic_steps_per_update`` critic
minibatches and one actor step) is the learner's business.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, runtime_checkable


@dataclass
class UpdateFeedback:
    """What the loop tells the schedule after the updates of an agent step: the last update's
    metrics, and the learner and batch source, so a schedule can probe the learner (e.g. the
    critic's fraction of active units on a batch, through ``learner.probes()``) when it wants."""

    step: int
    updates: int                  # learner updates run after this agent step
    metrics: Mapping[str, float]  # the last update's metrics
    learner: Any
    batch_source: Any


@runtime_checkable
class UpdateSchedule(Protocol):
    def updates_at(self, step: int) -> int: ...

    def observe(self, feedback: "UpdateFeedback") -> None: ...

    def end_episode(self, episode: int) -> None: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class ReplayRatioSchedule:
    """A fixed replay ratio r (learner updates per agent step) after `seed_steps`.

    Fractional ratios are spread evenly with an accumulator: r = 0.5 runs one update every
    second step, r = 2 runs two per step, r = 1.5 alternates 1 and 2.
    """

    ratio: float
    seed_steps: int = 0
    _credit: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.ratio) and self.ratio > 0):
            raise ValueError(f"train.replay_ratio must be > 0 (got {self.ratio}); e.g. 0.5, 1 or 2")
        if self.seed_steps < 0:
            raise ValueError(f"train.seed_steps must be >= 0 (got {self.seed_steps})")

    def updates_at(self, step: int) -> int:
        if step < self.seed_steps:
            return 0
        self._credit += self.ratio
        n = int(self._credit)
        self._credit -= n
        return n

    def observe(self, feedback: "UpdateFeedback") -> None:
        """A fixed ratio ignores feedback."""

    def end_episode(self, episode: int) -> None:
        """A fixed ratio ignores episode ends."""

    def state_dict(self) -> dict:
        return {"credit": self._credit}

    def load_state_dict(self, state: dict) -> None:
        self._credit = float(state["credit"])


def make_schedule(train_cfg) -> UpdateSchedule:
    """The schedule the `train` config asks for (a fixed replay ratio today)."""
    return ReplayRatioSchedule(ratio=float(train_cfg.replay_ratio), seed_steps=int(train_cfg.seed_steps))
