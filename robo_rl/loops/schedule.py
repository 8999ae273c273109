"""Update schedules: how many learner steps to run after each agent step.

The loop asks the schedule instead of using a constant, so adaptive replay ratio (FAU-based) and
remote learners plug in without touching the loop.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ReplayRatioSchedule:
    """A fixed replay ratio r (learner steps per agent step) after `seed_steps`.

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

    def state_dict(self) -> dict:
        return {"credit": self._credit}

    def load_state_dict(self, state: dict) -> None:
        self._credit = float(state["credit"])
