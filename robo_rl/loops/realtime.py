"""The real-time loop's pieces (``realtime.enabled=true``): the env steps at its own wall-clock
rate while the learner updates concurrently, as on a robot (SERL's actor/learner split).

    robo-rl train task=arm/peg_insert agent=rlpd realtime.enabled=true           # simulation at 10 Hz
    robo-rl train task=arm/peg_insert agent=rlpd realtime.enabled=true hardware=twin

What runs where (robo_rl.loops.online drives it):
- the control thread (the loop's own): act with the *acting copy* of the policy, step the env,
  store the transition, wait for the next tick of a fixed grid (``ControlPacer``; a ROS 2 arm
  paces itself in its env client). It never waits for an update.
- the learner thread (``ConcurrentLearner``): samples from the replay and updates the learner as
  fast as the update budget allows: the schedule's updates for the agent steps taken so far
  (``train.replay_ratio``, or schedule=adaptive), capped at ``realtime.max_update_backlog``
  updates behind. Every ``realtime.push_every`` updates it pushes fresh weights to the acting copy.

Why a thread and not a process: PyTorch releases the GIL inside its kernels and MuJoCo inside
mj_step, so the two threads overlap on two cores; the learner shares the replay, the schedule
and the checkpoint with the control thread without copies or IPC, so the synchronous loop's
checkpoint/resume and replay guarantees hold unchanged (measured in BENCHMARKS.md "Real-time
loop": rate error and updates per step).

Checkpoints and evaluations wait for the end of the episode in which they fall due (the arm is
between episodes there, so pausing the learner for a consistent checkpoint blocks no control
tick); an evaluation uses the acting copy with weight pushes held.
"""
from __future__ import annotations

import contextlib
import copy
import math
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from robo_rl.loops.schedule import UpdateFeedback


@dataclass
class RealtimeConfig:
    """``realtime:`` in configs/config.yaml."""

    enabled: bool = False
    control_hz: float | None = None   # agent steps per second; null: the task's own rate (arm: options.control_hz)
    push_every: int = 1               # learner updates between weight pushes to the acting policy
    max_update_backlog: int = 50      # updates the learner may owe; older ones are dropped, not caught up
    # Python's GIL hand-over interval while both threads run (s): the control thread gets the GIL
    # back within this after its sleep ends (Python's default 5 ms would be 5% of a 10 Hz period).
    gil_switch_interval: float = 0.0005

    def __post_init__(self) -> None:
        problems = []
        if self.control_hz is not None and not (math.isfinite(self.control_hz) and self.control_hz > 0):
            problems.append(f"realtime.control_hz must be > 0 or null (the task's own rate), got {self.control_hz}")
        if self.push_every < 1:
            problems.append(f"realtime.push_every must be >= 1 update, got {self.push_every}")
        if self.max_update_backlog < 1:
            problems.append(f"realtime.max_update_backlog must be >= 1 update, got {self.max_update_backlog}")
        if not 0 < self.gil_switch_interval <= 0.01:
            problems.append(f"realtime.gil_switch_interval must be in (0, 0.01] s, got {self.gil_switch_interval}")
        if problems:
            from robo_rl.config_schema import ConfigError

            raise ConfigError("invalid config:\n  - " + "\n  - ".join(problems))


def control_period(cfg: RealtimeConfig, env: Any) -> float | None:
    """Seconds per agent step the pacer keeps, or None when the env paces itself (a ROS 2 arm)."""
    if getattr(env.backend, "shares_robot", False):
        return None
    if cfg.control_hz is not None:
        return 1.0 / float(cfg.control_hz)
    step_seconds = env.backend.control_timestep
    if step_seconds is None:
        raise ValueError(f"realtime.enabled=true: the task {env.cfg.name} has no control rate of its own; "
                         f"set realtime.control_hz")
    return float(step_seconds) * env.cfg.action_repeat


class EpisodeRate:
    """The achieved control rate of one episode: agent steps per second between the first and
    the last step's end (the reset before the first step is not control time)."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last: float | None = None
        self.steps = 0

    def tick(self) -> None:
        now = time.perf_counter()
        if self.first is None:
            self.first = now
        self.last = now
        self.steps += 1

    def hz(self) -> float:
        if self.steps < 2 or self.last <= self.first:
            return math.nan
        return (self.steps - 1) / (self.last - self.first)


class ActingCopy:
    """The policy the control thread acts with: a second learner of the same config whose acting
    networks (``learner.acting_networks``) and acting state (``extra_state()``) the learner thread
    overwrites under a lock, so acting never waits for an update and never sees a half-written
    parameter tensor."""

    def __init__(self, learner: Any, make_learner: Callable[[], Any]):
        self.learner, self.policy = learner, make_learner()
        names = tuple(learner.acting_networks)
        source, target = learner.networks(), self.policy.networks()
        missing = [name for name in names if name not in source]
        if missing:
            raise ValueError(f"realtime: agent={learner.cfg.name} has no networks {missing} to act with")
        # (acting tensor, learner tensor) pairs, found once: a push runs after every update, and the
        # learner's surgery (reinitialize_, shrink_perturb_) works in place, so the tensors stay the same
        self._pairs = [(mine, theirs) for name in names
                       for mine, theirs in zip(target[name].state_dict().values(), source[name].state_dict().values())]
        self._lock = threading.Lock()
        self.held = False    # an evaluation holds the weights still
        self.push(force=True)

    def push(self, force: bool = False) -> None:
        """The learner's current acting weights and state into the acting policy (not while held)."""
        with torch.no_grad(), self._lock:
            if self.held and not force:
                return
            for mine, theirs in self._pairs:
                mine.copy_(theirs)
            # acting schedules beyond the weights (DrM: the dormant ratio and awaken step set its noise)
            self.policy.load_extra_state(self.learner.extra_state())

    def act(self, obs, step: int | None = None, eval_mode: bool = False):
        with self._lock:
            return self.policy.act(obs, step=step, eval_mode=eval_mode)

    @contextlib.contextmanager
    def hold(self):
        """No pushes inside (an evaluation sees one fixed policy)."""
        self.held = True
        try:
            yield self
        finally:
            self.held = False


class ConcurrentLearner:
    """The learner thread. The control thread grants updates (``grant``, the schedule's
    updates for each agent step) and stores transitions under ``data_lock``; the thread samples
    under the same lock and updates outside it. ``paused()`` stops it between updates (a
    checkpoint, the end of the run); an exception in the thread is raised in the control thread
    at its next ``check()``."""

    def __init__(self, learner: Any, batch_source: Any, replay: Any, schedule: Any, acting: ActingCopy,
                 cfg: RealtimeConfig, batch_size: int, probe_every: int = 0,
                 probe_fn: Callable[[Any], dict] | None = None):
        self.learner, self.replay, self.schedule, self.acting = learner, replay, schedule, acting
        self.cfg, self.batch_size = cfg, int(batch_size)
        self.data_lock = threading.Lock()        # replay writes vs batch sampling
        self.schedule_lock = threading.Lock()    # the schedule's state: told by both threads
        self.batch_source = _LockedSource(batch_source, self.data_lock)
        self.probe_every, self.probe_fn = int(probe_every), probe_fn
        self._wake = threading.Condition()
        self._granted = 0           # updates owed (<= max_update_backlog)
        self._dropped = 0
        self._step = 0              # agent steps the control thread has taken
        self._pause_requests = 0
        self._busy = False
        self._stop = False
        self.error: BaseException | None = None
        self.updates = 0
        self.metrics: dict[str, float] = {}
        self.probes: list[tuple[int, dict]] = []   # (step, plasticity metrics) for the control thread to log
        self._next_probe = 0
        self._previous_switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(cfg.gil_switch_interval)
        self._thread = threading.Thread(target=self._run, name="robo_rl-learner", daemon=True)
        self._thread.start()

    # -- control thread -------------------------------------------------------------------
    def grant(self, step: int, updates: int) -> None:
        """After agent step ``step`` (0-based): the schedule's updates for it."""
        with self._wake:
            self._step = step + 1
            if len(self.replay) < self.batch_size:
                return   # as in the synchronous loop: no updates before a first batch fits
            self._granted += int(updates)
            if self._granted > self.cfg.max_update_backlog:
                self._dropped += self._granted - self.cfg.max_update_backlog
                self._granted = self.cfg.max_update_backlog
            self._wake.notify()

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def dropped_updates(self) -> int:
        return self._dropped

    @contextlib.contextmanager
    def paused(self):
        """The learner is idle between updates inside (its networks, optimisers and RNG are
        consistent with the replay for a checkpoint)."""
        with self._wake:
            self._pause_requests += 1
            while self._busy:
                self._wake.wait()
        try:
            yield self
        finally:
            with self._wake:
                self._pause_requests -= 1
                self._wake.notify_all()
        self.check()

    def close(self) -> None:
        """Stop the thread after its current update (idempotent)."""
        if not self._thread.is_alive():
            return
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        self._thread.join()
        sys.setswitchinterval(self._previous_switch_interval)

    # -- learner thread -------------------------------------------------------------------
    def _ready(self) -> bool:
        return (not self._stop and not self._pause_requests and self._granted > 0
                and len(self.replay) >= self.batch_size)

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._stop and not self._ready():
                        self._wake.wait(timeout=0.05)
                    if self._stop:
                        return
                    self._granted -= 1
                    self._busy = True
                    step = self._step
                try:
                    self._update(step)
                finally:
                    with self._wake:
                        self._busy = False
                        self._wake.notify_all()
        except BaseException as exc:  # raised in the control thread by check()
            self.error = exc

    def _update(self, step: int) -> None:
        metrics = self.learner.update(self.batch_source, step)
        self.updates += 1
        self.metrics = metrics
        with self.schedule_lock:
            self.schedule.observe(UpdateFeedback(step, 1, metrics, self.learner, self.batch_source))
        if self.updates % self.cfg.push_every == 0:
            self.acting.push()
        if self.probe_every and self.probe_fn is not None and step >= self._next_probe:
            self._next_probe = (step // self.probe_every + 1) * self.probe_every
            batch = getattr(self.learner, "last_batch", None)
            if batch is not None:
                self.probes.append((step, self.probe_fn(batch)))


class _LockedSource:
    """A batch source sampled under the lock the control thread stores transitions under."""

    def __init__(self, source: Any, lock: threading.Lock):
        self.source, self.lock = source, lock
        self.observation_space, self.action_space = source.observation_space, source.action_space

    def sample(self, batch_size: int):
        with self.lock:
            return self.source.sample(batch_size)

    def __getattr__(self, name: str):  # split(), primary, secondary... of a MixedSource
        return getattr(self.source, name)


def acting_learner_factory(make_agent: Callable[..., Any], agent_cfg: Any, env: Any, device: torch.device,
                           constraint: Any, run_seed: int) -> Callable[[], Any]:
    """A factory of a learner like the run's, for the acting copy: its sampling noise comes from
    a stream of its own (ACTING_POLICY), and building it moves no random stream the run checkpoints."""
    from robo_rl.seeding import ACTING_POLICY, stream_seed

    def build():
        state = torch.get_rng_state()
        try:
            policy = make_agent(copy.deepcopy(agent_cfg), env.observation_space, env.action_space, device,
                                constraint=constraint)
        finally:
            torch.set_rng_state(state)
        policy.generator.manual_seed(stream_seed(run_seed, ACTING_POLICY))
        return policy
    return build
