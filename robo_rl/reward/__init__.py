"""The one reward module: callables over (obs, action, next_obs, info) -> RewardOutput.

Simulated tasks, real-robot environments and offline relabelling all compute rewards through
these objects, so a reward is defined once. Every term reads what it needs from the transition:
distances from ``info`` (or from a slice of ``next_obs`` when relabelling stored observations),
energy from ``info["energy_cost"]``. A term returns a reward and a cost; the cost is the signal
constrained (Lagrangian) RL keeps under a budget, e.g. the energy drawn from a passivity tank.

    reward_fn = SumReward(DistanceReward(dense=True, threshold=0.01), EnergyCost())
    reward, cost = reward_fn(obs, action, next_obs, info)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Protocol, Sequence

import numpy as np


class RewardOutput(NamedTuple):
    reward: float
    cost: float


class RewardFn(Protocol):
    def __call__(self, obs: Any, action: np.ndarray, next_obs: Any,
                 info: Mapping[str, Any]) -> RewardOutput: ...


def _read_info(info: Mapping[str, Any], key: str, term: str) -> float:
    if key not in info:
        raise KeyError(f"{term} needs info[{key!r}] but the transition's info has keys "
                       f"{sorted(info)}; have the environment report it or pass another key")
    return float(info[key])


@dataclass(frozen=True)
class DistanceReward:
    """Reward from a distance d to the goal (metres, or any length the task defines).

    dense=True:  reward = -weight * d (shaping; 0 at the goal).
    dense=False: reward = weight * 1[d <= threshold] (sparse success reward, SERL style).
    d is ``info[key]``, or ``||next_obs[obs_slice]||`` when obs_slice=(start, stop) is given
    (a goal-relative vector stored in the observation: relabelling needs no info).
    """

    dense: bool = True
    threshold: float = 0.01
    weight: float = 1.0
    key: str = "goal_distance"
    obs_slice: tuple[int, int] | None = None

    def __post_init__(self):
        if not self.threshold > 0:
            raise ValueError(f"DistanceReward.threshold must be > 0, got {self.threshold}")
        if self.obs_slice is not None and not (0 <= self.obs_slice[0] < self.obs_slice[1]):
            raise ValueError(f"DistanceReward.obs_slice must be (start, stop) with 0 <= start < "
                             f"stop, got {self.obs_slice}")

    def distance(self, next_obs: Any, info: Mapping[str, Any]) -> float:
        if self.obs_slice is None:
            return _read_info(info, self.key, "DistanceReward")
        start, stop = self.obs_slice
        return float(np.linalg.norm(np.asarray(next_obs, dtype=np.float64)[start:stop]))

    def is_success(self, next_obs: Any, info: Mapping[str, Any]) -> bool:
        return self.distance(next_obs, info) <= self.threshold

    def __call__(self, obs, action, next_obs, info) -> RewardOutput:
        d = self.distance(next_obs, info)
        if self.dense:
            return RewardOutput(-self.weight * d, 0.0)
        return RewardOutput(self.weight * float(d <= self.threshold), 0.0)


@dataclass(frozen=True)
class ActionPenalty:
    """reward = -weight * ||action||^2 (discourages large set-point jumps)."""

    weight: float = 0.0

    def __call__(self, obs, action, next_obs, info) -> RewardOutput:
        a = np.asarray(action, dtype=np.float64)
        return RewardOutput(-self.weight * float(np.dot(a.ravel(), a.ravel())), 0.0)


@dataclass(frozen=True)
class EnergyCost:
    """cost = scale * info[key]: by default the energy (J) the controller injected through its
    non-passive part during the step (drawn from the energy tank when one is enabled).
    With ``as_penalty`` the same quantity is also subtracted from the reward (a soft
    penalty instead of a constraint). ``counts_as_cost=False`` makes the term reward-only
    (cost 0): a penalty term next to a cost term on the same energy then does not count the
    energy in the cost twice."""

    scale: float = 1.0
    key: str = "energy_cost"
    as_penalty: bool = False
    counts_as_cost: bool = True

    def __post_init__(self):
        if not (self.as_penalty or self.counts_as_cost):
            raise ValueError("EnergyCost(as_penalty=False, counts_as_cost=False) contributes "
                             "neither reward nor cost; set one of them to True")

    def __call__(self, obs, action, next_obs, info) -> RewardOutput:
        energy = self.scale * _read_info(info, self.key, "EnergyCost")
        return RewardOutput(-energy if self.as_penalty else 0.0,
                            energy if self.counts_as_cost else 0.0)


class SumReward:
    """Sum of terms: rewards add, costs add."""

    def __init__(self, *terms: RewardFn):
        if not terms:
            raise ValueError("SumReward needs at least one term, e.g. SumReward(DistanceReward())")
        self.terms: Sequence[RewardFn] = terms

    def __call__(self, obs, action, next_obs, info) -> RewardOutput:
        reward = cost = 0.0
        for term in self.terms:
            r, c = term(obs, action, next_obs, info)
            reward += r
            cost += c
        return RewardOutput(reward, cost)

    def __repr__(self) -> str:
        return f"SumReward({', '.join(map(repr, self.terms))})"


__all__ = ["RewardOutput", "RewardFn", "DistanceReward", "ActionPenalty", "EnergyCost",
           "SumReward"]
