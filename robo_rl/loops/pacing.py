"""A fixed wall-clock grid for control loops (no torch, no ROS: the real-time training loop, the
teleop recorder and the ROS 2 env client all pace with it)."""
from __future__ import annotations

import time
from typing import Callable


class ControlPacer:
    """Steps on a fixed wall-clock grid of ``period`` seconds, as a robot's control loop does:
    wait() (called before each step) returns at the next grid point; a late caller (a slow
    render, a descheduled process) restarts the grid instead of rushing to catch up, and is
    counted in ``late_steps``. Shared by the real-time loop, `robo-rl record`'s teleop and the ROS 2 env client."""

    def __init__(self, period: float, clock: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], None] = time.sleep):
        self.period, self.clock, self.sleep = float(period), clock, sleep
        self.deadline: float | None = None
        self.late_steps = 0

    def wait(self) -> float:
        """Sleep until the next grid point; -> how late this call came (s, 0 when on time)."""
        now = self.clock()
        if self.deadline is None:
            self.deadline = now
            return 0.0
        self.deadline += self.period
        late = now - self.deadline
        if late > 0:
            self.late_steps += 1
            self.deadline = now
            return late
        self.sleep(-late)
        return 0.0

    def restart(self) -> None:
        """The next wait() starts a new grid (between episodes: the reset takes its own time)."""
        self.deadline = None
