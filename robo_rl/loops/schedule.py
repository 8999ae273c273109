"""Update schedules: how many learner updates to run after each agent step.

The loop asks the schedule (``updates_at(step)``) instead of using a constant, and tells it what
happened (``observe(step, metrics)`` after the step's updates with the last update's metrics and
any probe values; ``end_episode(episode)`` at each episode end), so an adaptive replay ratio
(e.g. switching on the critic's fraction of active units) and remote learners plug in without
touching the loop. "Learner updates per agent step" is called the replay ratio everywhere
(``train.replay_ratio``); what one update does (e.g. SAC's ``critic_steps_per_update`` critic
minibatches and one actor step) is the learner's business.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, runtime_checkable


@runtime_checkable
class UpdateSchedule(Protocol):
    def updates_at(self, step: int) -> int: ...

    def observe(self, step: int, metrics: Mapping[str, float]) -> None: ...

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
        if not self.ratio > 0:
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

    def observe(self, step: int, metrics: Mapping[str, float]) -> None:
        """A fixed ratio ignores feedback."""

    def end_episode(self, episode: int) -> None:
        """A fixed ratio ignores episode ends."""

    @property
    def current_ratio(self) -> float:
        return self.ratio

    def state_dict(self) -> dict:
        return {"credit": self._credit}

    def load_state_dict(self, state: dict) -> None:
        self._credit = float(state["credit"])


def make_schedule(train_cfg) -> UpdateSchedule:
    """The schedule the `train` config asks for (a fixed replay ratio today)."""
    return ReplayRatioSchedule(ratio=float(train_cfg.replay_ratio), seed_steps=int(train_cfg.seed_steps))
