"""Update schedules: how many learner updates to run after each agent step (``schedule=fixed``,
the default: ``train.replay_ratio``; ``schedule=adaptive``: Adaptive RR).

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
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

from robo_rl.plasticity import network_fau


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

    def end_episode(self, episode: int) -> str | None: ...   # a note for the run log, if any

    def metrics(self) -> dict[str, float]: ...               # logged with each episode's row

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

    def end_episode(self, episode: int) -> str | None:
        """A fixed ratio ignores episode ends."""
        return None

    def metrics(self) -> dict[str, float]:
        return {"replay_ratio": self.ratio}

    def state_dict(self) -> dict:
        return {"credit": self._credit}

    def load_state_dict(self, state: dict) -> None:
        if "credit" not in state:
            raise ValueError("the checkpoint's update schedule is not a fixed replay ratio (it was trained "
                             "with schedule=adaptive); resume with the run's own schedule")
        self._credit = float(state["credit"])


@dataclass
class FixedScheduleConfig:
    """``schedule=fixed``: ``train.replay_ratio`` learner updates per agent step, throughout."""

    name: str = "fixed"


@dataclass
class AdaptiveScheduleConfig:
    """``schedule=adaptive`` (Adaptive RR, Ma et al. ICLR 2024): start at ``train.replay_ratio``
    (the paper's 0.5, set by configs/schedule/adaptive.yaml), switch once to ``final_ratio``."""

    name: str = "adaptive"
    final_ratio: float = 2.0      # learner updates per agent step after the switch
    check_every: int = 50         # episodes between FAU comparisons
    fau_threshold: float = 0.001  # switch when |FAU change| between two checks <= this
    network: str = "critic"       # whose FAU decides (the paper: the critic's)

    def __post_init__(self) -> None:
        problems = []
        if not (math.isfinite(self.final_ratio) and self.final_ratio > 0):
            problems.append(f"schedule.final_ratio must be > 0 (got {self.final_ratio})")
        if not self.check_every >= 1:
            problems.append(f"schedule.check_every must be >= 1 episode (got {self.check_every})")
        if not (math.isfinite(self.fau_threshold) and self.fau_threshold >= 0):
            problems.append(f"schedule.fau_threshold must be >= 0 (got {self.fau_threshold})")
        if problems:
            raise ValueError("; ".join(problems))


FauProbe = Callable[[Any, Any, str], float]   # (learner, batch, network) -> FAU


class AdaptiveReplayRatio:
    """Adaptive replay ratio: a low ratio while the critic's plasticity still changes, then a
    one-way switch to a high one (Revisiting Plasticity in Visual RL, ICLR 2024).

    As the authors' train_adapt_rr.py: the critic's FAU of the first update is the first
    reference; the updates of every ``check_every``-th episode (episodes K, 2K, ...) are
    averaged, and at that episode's end the average is compared with the previous check's; when
    |change| <= ``fau_threshold`` the ratio becomes ``final_ratio`` for the rest of the run. The
    FAU is measured after each of those updates on the learner's own last minibatch
    (``learner.last_batch``, no augmentation: robo_rl.plasticity), where the authors count it
    inside the critic's training forward on the augmented batch. After the switch nothing is
    measured. Switch, checks and reference are state: a resumed run neither switches back nor
    twice.
    """

    def __init__(self, cfg: AdaptiveScheduleConfig, start_ratio: float, seed_steps: int = 0,
                 fau_probe: FauProbe = network_fau):
        self.cfg = cfg
        self.start_ratio = float(start_ratio)
        self._ratio = ReplayRatioSchedule(self.start_ratio, seed_steps)
        self._fau_probe = fau_probe
        self.reference_fau: float | None = None   # the previous check's average (first: update 1)
        self.switch_step: int | None = None       # the first agent step run at final_ratio
        self.last_check: tuple[int, float] | None = None   # (episode, window average)
        self._window: list[float] | None = [] if cfg.check_every == 1 else None
        self._last_step = -1

    @property
    def ratio(self) -> float:
        return self._ratio.ratio

    def updates_at(self, step: int) -> int:
        self._last_step = step
        return self._ratio.updates_at(step)

    def observe(self, feedback: UpdateFeedback) -> None:
        if self.switch_step is not None:
            return
        if self.reference_fau is None or self._window is not None:
            fau = float(self._fau_probe(feedback.learner, feedback.learner.last_batch, self.cfg.network))
            if self.reference_fau is None:
                self.reference_fau = fau
            if self._window is not None:
                self._window.append(fau)

    def end_episode(self, episode: int) -> str | None:
        """``episode``: episodes finished so far (1, 2, ...)."""
        if self.switch_step is not None:
            return None
        note = None
        every = self.cfg.check_every
        if episode % every == 0 and self._window and self.reference_fau is not None:
            average = sum(self._window) / len(self._window)
            change = abs(average - self.reference_fau)
            self.last_check = (episode, average)
            if change <= self.cfg.fau_threshold:
                self._ratio.ratio = self.cfg.final_ratio
                self.switch_step = self._last_step + 1
                note = (f"adaptive replay ratio: {self.cfg.network} FAU {average:.4f} changed by {change:.4f} "
                        f"<= {self.cfg.fau_threshold} since the last check: replay ratio "
                        f"{self.start_ratio} -> {self.cfg.final_ratio} from agent step {self.switch_step} "
                        f"(episode {episode})")
            self.reference_fau = average
        # the next window: the updates of the episode that ends at the next check
        self._window = [] if (episode + 1) % every == 0 else None
        return note

    def metrics(self) -> dict[str, float]:
        return {"replay_ratio": self.ratio,
                f"{self.cfg.network}_fau_check": self.last_check[1] if self.last_check else math.nan,
                "replay_ratio_switch_step": math.nan if self.switch_step is None else float(self.switch_step)}

    def state_dict(self) -> dict:
        return {"ratio": self._ratio.state_dict(), "current_ratio": self.ratio,
                "reference_fau": self.reference_fau, "switch_step": self.switch_step,
                "last_check": self.last_check, "window": self._window, "last_step": self._last_step}

    def load_state_dict(self, state: dict) -> None:
        if "switch_step" not in state:
            raise ValueError("the checkpoint's update schedule is not an adaptive replay ratio (it was "
                             "trained with schedule=fixed); resume with the run's own schedule")
        self._ratio.load_state_dict(state["ratio"])
        self._ratio.ratio = float(state["current_ratio"])
        self.reference_fau = state["reference_fau"]
        self.switch_step = state["switch_step"]
        self.last_check = None if state["last_check"] is None else tuple(state["last_check"])
        self._window = None if state["window"] is None else list(state["window"])
        self._last_step = int(state["last_step"])


def make_schedule(train_cfg, schedule_cfg=None) -> UpdateSchedule:
    """The schedule the config asks for: ``schedule=fixed`` (default) or ``schedule=adaptive``."""
    ratio, seed_steps = float(train_cfg.replay_ratio), int(train_cfg.seed_steps)
    name = "fixed" if schedule_cfg is None else str(schedule_cfg.name)
    if name == "fixed":
        return ReplayRatioSchedule(ratio=ratio, seed_steps=seed_steps)
    if name == "adaptive":
        fields = {key: schedule_cfg[key] for key in AdaptiveScheduleConfig.__dataclass_fields__
                  if key in schedule_cfg}
        return AdaptiveReplayRatio(AdaptiveScheduleConfig(**fields), ratio, seed_steps)
    raise ValueError(f"schedule={name} is not a schedule; use schedule=fixed or schedule=adaptive")
