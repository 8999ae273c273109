"""One control tick as every arm runs it: the MuJoCo tasks' physics loop and the ROS 2
controller node call this same object, so the safety trips, the hold and the impedance law
(with or without the energy tank) are one implementation.

Per tick, in this order:
  1. SafetyLimits.check on the measured TCP pose, twist (J qd) and wrist wrench; a trip latches
     a hold: controller.hold_at(state) puts the reference on the measured pose (spring force
     zero at once, damping stays) and the hold pose becomes the target until ``release()``;
  2. the impedance law toward the current target (scaled by the tank when there is one);
  3. the energy ledger of the tick (what the controller delivered beyond its spring, what it
     handed back, what the damper dissipated: measured on the plant's motion, see
     impedance.py "Applied torque").

The ledger sums over ticks until ``clear_ledger()``: a task clears it every policy step, the
ROS 2 node publishes it in its status.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .impedance import CartesianImpedanceController
from .passivity import PassivityFilter
from .quaternion import quat_normalize
from .safety import SafetyLimits
from .state import ArmState


class ControlTick:
    """Safety trips + hold + impedance law + energy ledger around one controller.

        tick = ControlTick(controller, SafetyLimits(params))
        tick.reset(state)                       # reference := measured pose, hold cleared
        tick.set_target(pos, quat, stiffness)   # kept while holding is False
        tau, info = tick.step(state, wrench, dt)
    """

    def __init__(self, controller: CartesianImpedanceController | PassivityFilter,
                 safety: SafetyLimits):
        self.controller = controller
        self.safety = safety
        self.target_pos = np.zeros(3)
        self.target_quat: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0)
        self.stiffness: np.ndarray | None = None
        self.clear_ledger()

    @property
    def tank(self):
        """The EnergyTank when the controller is a PassivityFilter, else None."""
        return self.controller.tank if isinstance(self.controller, PassivityFilter) else None

    @property
    def holding(self) -> bool:
        return bool(self.safety.holding)

    @property
    def hold_reason(self) -> str | None:
        return self.safety.hold_reason

    def reset(self, state: ArmState, safe_target: Sequence[float] | None = None,
              tank_energy: float | None = None) -> None:
        """Reference and target := the measured pose; hold cleared; ledger cleared.
        safe_target: what SafetyLimits remembers as the last safe target (default the pose).
        tank_energy: the tank's level after the reset (None: its initial_energy); a restart
        that must not refill the tank passes the level it had."""
        if isinstance(self.controller, PassivityFilter):
            self.controller.reset(state, tank_energy)
        else:
            self.controller.reset(state)
        self.target_pos = np.array(state.ee_pos, dtype=np.float64)
        self.target_quat = tuple(quat_normalize(state.ee_quat))
        self.stiffness = None
        self.safety.reset(self.target_pos if safe_target is None else safe_target)
        self.clear_ledger()

    def clear_ledger(self) -> None:
        self.energy_injected = 0.0      # J delivered beyond the spring (with a tank: drawn)
        self.energy_returned = 0.0      # J handed back (negative jumps, spring releases)
        self.energy_dissipated = 0.0    # J of realized negative excess (the damper's share)
        self.rejected: str | None = None  # last reason the controller ignored a command

    def set_target(self, pos, quat, stiffness=None) -> None:
        """New commanded pose (and stiffness, None keeps the last); ignored while holding."""
        if self.safety.holding:
            return
        self.target_pos = np.asarray(pos, dtype=np.float64)
        self.target_quat = tuple(quat)
        if stiffness is not None:
            self.stiffness = np.asarray(stiffness, dtype=np.float64)

    def hold(self, state: ArmState, reason: str) -> None:
        """Latch a hold at the measured pose from outside the per-tick trips (e-stop, a stale
        command stream); the same path a trip takes."""
        if not self.safety.holding:
            self.safety.holding = True
            self.safety.hold_reason = reason
            self.safety.hold_target = np.concatenate([np.asarray(state.ee_pos, float),
                                                      quat_normalize(state.ee_quat)])
            self._enter_hold(state)

    def release(self) -> None:
        """Clear a latched hold; the target stays the hold pose until set_target."""
        self.safety.reset_hold()
        self.controller.release_hold()

    def _enter_hold(self, state: ArmState) -> None:
        # the reference jumps to the measured pose (spring force 0 from this tick on, damping
        # stays); the released storage is returned energy, never drawn
        self.energy_returned -= self.controller.hold_at(state)
        hold = self.safety.hold_target
        self.target_pos = np.array(hold[:3])
        self.target_quat = quat_normalize(hold[3:])

    def step(self, state: ArmState, wrench: Sequence[float] | None, dt: float):
        """One tick -> (tau, info of the controller). wrench: the measured wrist wrench
        (force, torque; tool weight removed; any frame, the checks use norms) or None."""
        safety = self.safety
        if not safety.holding and safety.check(state.ee_pos, state.ee_quat,
                                               state.ee_velocity(), wrench):
            self._enter_hold(state)
        tau, info = self.controller.step(state, self.target_pos, self.target_quat,
                                         self.stiffness, dt)
        # injected: energy delivered beyond the spring (reference jumps and the realized
        # excess of the applied torque; with a tank: what the tank paid); returned: energy
        # handed back (negative jumps); dissipated: realized negative excess, measured
        energy_nonpassive, excess = info["energy_nonpassive"], info["energy_excess"]
        if "energy_cost" in info:
            self.energy_injected += info["energy_cost"]
        else:
            self.energy_injected += (energy_nonpassive if energy_nonpassive > 0.0 else 0.0) + (
                excess if excess > 0.0 else 0.0)
        if energy_nonpassive < 0.0:
            self.energy_returned -= energy_nonpassive
        self.energy_returned += info["energy_released"]     # spring releases (tank fallback)
        if excess < 0.0:
            self.energy_dissipated -= excess
        if info["rejected"] is not None:
            self.rejected = info["rejected"]
        return tau, info
