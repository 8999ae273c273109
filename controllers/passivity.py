"""Energy tank and the passivity filter that makes a variable impedance controller passive.

Energy tank (Ferraguti et al. 2013; Califano et al. 2022; Zanella et al.), per tick:

    gamma = clip((T - T_min) / (dt * P_np), 0, 1)          only if P_np > 0, else 1
    T    <- T - gamma * P_np * dt + sigma * P_diss * dt      capped at T_max
    sigma = refill_fraction while T < T_max, 0 once T >= T_max (no over-filling)

P_np is the power the non-passive part of the controller injects (moving set-point, rising
stiffness); a negative P_np (energy handed back, e.g. stiffness lowered while stretched) flows
into the tank. P_diss >= 0 is the power the damper dissipates. The tank stores its energy as
the headroom H = T - T_min >= 0 and draws at most H, so in floating point T >= T_min holds
exactly and T = T_0 + refilled + returned - drawn. Hence the invariant the tests check:

    energy drawn by the non-passive part <= T_0 - T_min + energy refilled from dissipation
                                            + energy returned into the tank

Energy that does not fit under T_max is discarded (never counted), which only tightens it.

The tank alone can only report gamma; it cannot undo an update already applied. The
PassivityFilter below wraps a CartesianImpedanceController and hands it the tank; per tick the
controller books, in order (impedance.py, "Applied torque"):
  1. the realized excess of the previous tick, X = tau . (q_k - q_{k-1}) + (V after the motion -
     V before): the work the torque that actually reached the joints (rate-limited, clipped,
     with the Coriolis feed-forward) did beyond what the spring storage gave up. X > 0 is
     drawn, X < 0 is dissipation (refilled at refill_fraction). If the tank cannot pay X the
     spring is released first (reference := measured pose, its storage returned);
  2. the reference/stiffness jump dE_np, scaled by gamma to what the tank holds;
  3. then it picks the applied torque so that the predicted excess of the coming tick fits
     what is left (least-power point of the rate/limit box, spring release, and as a last
     resort a torque scaled toward zero outside the rate box).
So the guarantee is about the plant: the energy the controller delivers to the robot over any
window is at most the spring storage it gives up plus the tank level above its floor at the
window's start, W + dV <= T(i) - T_min (measured in tests/test_plant_energy.py with the
production rate and torque limits on). Dissipation is no longer the predicted xdot^T D xdot
but what the plant actually gave up, so a lagging torque or the zero-order hold cannot refill
the tank with energy that was never removed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .impedance import CartesianImpedanceController
from .state import ArmState


@dataclass
class EnergyTankParams:
    """Tank sizes are chosen, not from a paper: 1 J is the storage of the default 2000 N/m
    spring stretched by its 1 cm clip along ~10 axes-worth of set-point moves; tune per task."""

    initial_energy: float = 1.0     # T_0, J
    min_energy: float = 0.05        # T_min, J: the floor the tank never goes below
    max_energy: float = 2.0         # T_max, J: no refilling above this
    refill_fraction: float = 1.0    # sigma: share of dissipated energy refilled below T_max
    dt: float = 0.001               # s, tick length used when step() gets no dt

    def __post_init__(self):
        values = (self.initial_energy, self.min_energy, self.max_energy, self.refill_fraction,
                  self.dt)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"EnergyTankParams must be finite, got {self}")
        if not 0.0 <= self.min_energy <= self.initial_energy <= self.max_energy:
            raise ValueError(f"EnergyTankParams need 0 <= min_energy ({self.min_energy}) <= "
                             f"initial_energy ({self.initial_energy}) <= max_energy "
                             f"({self.max_energy})")
        if not 0.0 <= self.refill_fraction <= 1.0:
            raise ValueError(f"EnergyTankParams.refill_fraction={self.refill_fraction} must be "
                             "in [0, 1]")
        if not self.dt > 0.0:
            raise ValueError(f"EnergyTankParams.dt={self.dt} must be > 0 (seconds)")


class EnergyTank:
    """Scalar energy tank; see the module docstring.

    Attributes: energy (T), available_energy (T - T_min), energy_cost (energy drawn in the
    last tick, >= 0; the per-step cost for passivity-aware RL), total_drawn, total_refilled
    (from dissipation), total_returned (negative P_np stored back), total_overdraft (energy
    asked of exchange() beyond what was available and refused; 0 when used via step() or the
    PassivityFilter), last_rejected (None or why the last input was ignored).
    """

    def __init__(self, params: EnergyTankParams | None = None):
        self.params = params if params is not None else EnergyTankParams()
        self._span = self.params.max_energy - self.params.min_energy
        self.reset()

    def reset(self, energy: float | None = None) -> None:
        p = self.params
        energy = p.initial_energy if energy is None else float(energy)
        if not p.min_energy <= energy <= p.max_energy:
            raise ValueError(f"tank energy {energy} outside [min_energy, max_energy] = "
                             f"[{p.min_energy}, {p.max_energy}]")
        self._headroom = min(energy - p.min_energy, self._span)
        self.energy_cost = 0.0
        self.total_drawn = 0.0
        self.total_refilled = 0.0
        self.total_returned = 0.0
        self.total_overdraft = 0.0
        self.last_rejected: str | None = None

    @property
    def energy(self) -> float:
        return self.params.min_energy + self._headroom

    @property
    def available_energy(self) -> float:
        """Energy that may still be drawn this tick: T - T_min >= 0."""
        return self._headroom

    def admissible_scale(self, power_nonpassive: float, dt: float | None = None) -> float:
        """gamma = clip((T - T_min) / (dt P_np), 0, 1) for P_np > 0, else 1; NaN -> 0."""
        if dt is None:
            dt = self.params.dt
        requested = power_nonpassive * dt
        if not requested > self._headroom:   # also catches P_np <= 0; NaN falls through
            return 1.0 if math.isfinite(requested) else 0.0
        return self._headroom / requested

    def exchange(self, energy_drawn: float, energy_dissipated: float) -> None:
        """Book one tick: draw ``energy_drawn`` (J; negative = handed back into the tank),
        then refill sigma * ``energy_dissipated`` (J), all capped at T_max."""
        self.last_rejected = None
        if not math.isfinite(energy_drawn):
            self.last_rejected = f"energy_drawn={energy_drawn} not finite; nothing drawn"
            energy_drawn = 0.0
        if not (math.isfinite(energy_dissipated) and energy_dissipated >= 0.0):
            self.last_rejected = (f"energy_dissipated={energy_dissipated} must be finite and "
                                  ">= 0; nothing refilled")
            energy_dissipated = 0.0
        cost = max(energy_drawn, 0.0)
        if cost > self._headroom:
            self.total_overdraft += cost - self._headroom
            cost = self._headroom
        self._headroom -= cost                    # >= 0 exactly, since cost <= headroom
        room = self._span - self._headroom
        returned = min(max(-energy_drawn, 0.0), room)
        refill = 0.0
        if room - returned > 0.0:                 # sigma = 0 once T >= T_max
            refill = min(self.params.refill_fraction * energy_dissipated, room - returned)
        self._headroom = min(self._headroom + returned + refill, self._span)
        self.energy_cost = cost
        self.total_drawn += cost
        self.total_returned += returned
        self.total_refilled += refill

    def step(self, power_nonpassive: float, power_dissipated: float,
             dt: float | None = None) -> float:
        """One tick from powers (W) -> gamma in [0, 1], the share of P_np that was paid."""
        if dt is None:
            dt = self.params.dt
        gamma = self.admissible_scale(power_nonpassive, dt)
        if power_nonpassive > 0.0:
            # gamma * P * dt may exceed the headroom by one rounding: draw the headroom then
            drawn = min(gamma * power_nonpassive * dt, self._headroom)
        else:
            drawn = power_nonpassive * dt if math.isfinite(power_nonpassive) else 0.0
        self.exchange(drawn, power_dissipated * dt)
        if not math.isfinite(power_nonpassive):
            self.last_rejected = f"power_nonpassive={power_nonpassive} not finite; gamma = 0"
        return gamma


class PassivityFilter:
    """Controller + tank: the reference/stiffness update of each tick is scaled so that the
    energy it injects never exceeds what the tank holds above its floor.

        pf = PassivityFilter(CartesianImpedanceController(ImpedanceParams(), 7),
                             EnergyTank(EnergyTankParams()))
        pf.reset(state)
        tau, info = pf.step(state, target_pos, target_quat, stiffness=None, dt=0.001)

    info is the controller's info plus tank_energy and energy_cost (J drawn this tick, all
    bookings together). ``hold_at(state)`` is the safety hold (returns the released storage).
    """

    def __init__(self, controller: CartesianImpedanceController, tank: EnergyTank):
        if controller.integral_enabled:
            raise ValueError("PassivityFilter cannot bound an impedance controller with an "
                             "integral term (an active element outside the tank); set "
                             "ImpedanceParams.integral_gain to zeros")
        self.controller = controller
        self.tank = tank

    def reset(self, state: ArmState, tank_energy: float | None = None) -> None:
        self.controller.reset(state)
        self.tank.reset(tank_energy)

    def step(self, state: ArmState, target_pos, target_quat, stiffness=None,
             dt: float | None = None):
        if dt is None:
            dt = self.controller.params.control_dt
        tank = self.tank
        drawn = tank.total_drawn
        tau, info = self.controller.step(state, target_pos, target_quat, stiffness, dt,
                                         tank=tank)
        info["tank_energy"] = tank.energy
        info["energy_cost"] = tank.energy_cost = tank.total_drawn - drawn
        return tau, info

    @property
    def holding(self) -> bool:
        return self.controller.holding

    def release_hold(self) -> None:
        self.controller.release_hold()

    def hold_at(self, state: ArmState) -> float:
        """Safety hold (CartesianImpedanceController.hold_at); the spring storage it releases
        (-V <= 0) is handed back into the tank (returned, never drawn; what does not fit under
        T_max is discarded). -> the storage change (J)."""
        released = self.controller.hold_at(state)
        self.tank.exchange(released, 0.0)
        return released
