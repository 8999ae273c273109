"""Safety layer on the commanded pose: workspace box, per-action step limit, latching hold.

``clip_target(prev_target, proposed)`` runs once per agent action (SERL: 10 Hz):
  1. step limit: each position axis moves at most max_step_translation from prev_target, the
     orientation at most max_step_rotation per axis of the world-frame rotation vector of
     proposed * prev^-1 (SERL scales actions in [-1, 1] to these deltas);
  2. workspace: the position is clipped to [workspace_low, workspace_high]; if orientation
     limits are set, the rotation vector of q * orientation_reference^-1 is clipped per axis.
  Clipping to the box after the step limit keeps the step limit whenever prev_target is inside
  the box (each coordinate ends between prev and the step-clipped value); a prev_target outside
  the box is pulled in (the box wins). Targets are 3 (position) or 7 (position + w,x,y,z).
``check(ee_pos, ee_quat, ee_vel, ee_force)`` runs every control tick: a speed or force above
  its threshold (force and torque norms optionally low-pass filtered, ``force_filter``) latches a
  hold (the measured pose at that moment becomes the target, so the
  spring force drops to zero) until ``reset_hold()``; ``hold_reason`` says what tripped it.
Non-finite proposals are rejected (the previous target is returned, ``last_rejected`` says
why); non-finite measurements trip the hold. Nothing raises on finite input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .quaternion import quat_error, quat_multiply, rotvec_to_quat


@dataclass
class SafetyParams:
    """Defaults: a Franka table-top workspace in front of the base and conservative trip
    levels (below the Franka's own 1.7 m/s, 2.5 rad/s Cartesian limits); set per task."""

    workspace_low: tuple[float, float, float] = (0.25, -0.35, 0.0)    # m, world frame
    workspace_high: tuple[float, float, float] = (0.75, 0.35, 0.6)    # m
    max_step_translation: float = 0.02      # m per action, per axis (SERL action scale)
    max_step_rotation: float = 0.1          # rad per action, per rotation-vector axis
    # Optional orientation box: |rotvec(q * orientation_reference^-1)_i| <= orientation_limit_i
    orientation_reference: tuple[float, float, float, float] | None = None
    orientation_limit: tuple[float, float, float] | None = None       # rad per axis
    max_linear_speed: float = 1.0           # m/s, trips the hold
    max_angular_speed: float = 2.0          # rad/s
    max_force: float = 60.0                 # N, norm of the measured force
    max_torque: float = 10.0                # Nm, norm of the measured torque
    # Per-check gain of a first-order low-pass on the force and torque norms before their
    # thresholds (1 = none). Rigid simulated contacts (and real impacts) give one-tick spikes
    # far above any sustained force: 0.1 per 2 ms tick is a ~20 ms time constant, so a 190 N
    # single-tick spike reads 19 N while a 150 N push held for 20 ms reads ~130 N.
    force_filter: float = 1.0

    def __post_init__(self):
        low, high = np.asarray(self.workspace_low, float), np.asarray(self.workspace_high, float)
        if low.shape != (3,) or high.shape != (3,) or not np.all(np.isfinite(low)) or \
                not np.all(np.isfinite(high)) or np.any(low > high):
            raise ValueError(f"SafetyParams workspace_low={self.workspace_low} / workspace_high="
                             f"{self.workspace_high} must be 3 finite values each with low <= high")
        for name in ("max_step_translation", "max_step_rotation", "max_linear_speed",
                     "max_angular_speed", "max_force", "max_torque"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"SafetyParams.{name}={value} must be finite and > 0")
        if not 0.0 < self.force_filter <= 1.0:
            raise ValueError(f"SafetyParams.force_filter={self.force_filter} must be in (0, 1] "
                             "(1: no filter)")
        if (self.orientation_reference is None) != (self.orientation_limit is None):
            raise ValueError("SafetyParams.orientation_reference and orientation_limit go "
                             "together: set both (orientation box) or neither")
        if self.orientation_limit is not None:
            limit = np.asarray(self.orientation_limit, float)
            ref = np.asarray(self.orientation_reference, float)
            if limit.shape != (3,) or not np.all(limit >= 0) or not np.all(np.isfinite(limit)):
                raise ValueError(f"SafetyParams.orientation_limit={self.orientation_limit} must "
                                 "be 3 finite values >= 0 (rad)")
            if ref.shape != (4,) or not abs(np.linalg.norm(ref) - 1.0) < 1e-6:
                raise ValueError(f"SafetyParams.orientation_reference={self.orientation_reference}"
                                 " must be a unit quaternion (w, x, y, z)")


class SafetyLimits:
    def __init__(self, params: SafetyParams | None = None):
        self.params = p = params if params is not None else SafetyParams()
        self._low = [float(v) for v in p.workspace_low]
        self._high = [float(v) for v in p.workspace_high]
        self._orientation_ref = (tuple(float(v) for v in p.orientation_reference)
                                 if p.orientation_reference is not None else None)
        self._orientation_limit = (tuple(float(v) for v in p.orientation_limit)
                                   if p.orientation_limit is not None else None)
        self.reset()

    def reset(self, target: Sequence[float] | None = None) -> None:
        """Clear the hold and remember ``target`` as the last safe target (optional)."""
        self.holding = False
        self.hold_reason: str | None = None
        self.hold_target: np.ndarray | None = None
        self.last_rejected: str | None = None
        self._force_filtered = self._torque_filtered = 0.0
        self._last_target = None if target is None else [float(v) for v in target]

    def reset_hold(self) -> None:
        """Release a latched hold (after the operator / episode reset has dealt with it)."""
        self.holding = False
        self.hold_reason = None
        self.hold_target = None
        self._force_filtered = self._torque_filtered = 0.0

    # ------------------------------------------------------------------ per action
    def clip_target(self, prev_target: Sequence[float] | None,
                    proposed: Sequence[float]) -> np.ndarray:
        """Safe target from ``proposed`` given the previous target (see module docstring)."""
        self.last_rejected = None
        if prev_target is None:
            prev_target = self._last_target if self._last_target is not None else proposed
        prev = prev_target.tolist() if isinstance(prev_target, np.ndarray) else list(prev_target)
        if self.holding:
            target = self.hold_target if len(prev) == 7 else self.hold_target[:3]
            self._last_target = target.tolist()
            return target.copy()
        try:
            prop = (proposed.tolist() if isinstance(proposed, np.ndarray)
                    else [float(v) for v in proposed])
            ok = len(prop) == len(prev) and len(prev) in (3, 7) and math.isfinite(sum(prop))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            self.last_rejected = (f"proposed target {proposed!r} rejected: need {len(prev)} finite "
                                  "numbers (x, y, z[, w, qx, qy, qz]); holding the previous target")
            return np.array(prev, dtype=float)
        step = self.params.max_step_translation
        # step limit around prev, then the workspace box
        target = [min(max(min(max(v, c - step), c + step), lo), hi)
                  for v, c, lo, hi in zip(prop[:3], prev[:3], self._low, self._high)]
        if len(prev) == 7:
            target += self._clip_orientation(prev[3:], prop[3:])
        self._last_target = target
        return np.array(target)

    def _clip_orientation(self, prev_quat, proposed_quat) -> list[float]:
        w, x, y, z = proposed_quat
        norm = math.sqrt(w * w + x * x + y * y + z * z)
        if not norm > 0.0:
            self.last_rejected = "proposed quaternion is zero; orientation held"
            return list(prev_quat)
        limit = self.params.max_step_rotation
        delta = quat_error(proposed_quat, prev_quat)      # scale-invariant in proposed_quat
        if max(abs(delta[0]), abs(delta[1]), abs(delta[2])) <= limit:
            quat = (w / norm, x / norm, y / norm, z / norm)
        else:
            delta = [min(max(r, -limit), limit) for r in delta]
            quat = quat_multiply(rotvec_to_quat(delta), prev_quat)
        if self._orientation_ref is not None:
            offset = quat_error(quat, self._orientation_ref)
            clipped = [min(max(r, -lim), lim) for r, lim in zip(offset, self._orientation_limit)]
            if clipped != list(offset):
                quat = quat_multiply(rotvec_to_quat(clipped), self._orientation_ref)
        w, x, y, z = quat
        norm = math.sqrt(w * w + x * x + y * y + z * z)
        return [w / norm, x / norm, y / norm, z / norm]

    # ------------------------------------------------------------------ per tick
    def check(self, ee_pos: Sequence[float], ee_quat: Sequence[float],
              ee_vel: Sequence[float] | None = None,
              ee_force: Sequence[float] | None = None) -> bool:
        """Trip (and latch) the hold if a measured speed or force is too high; -> holding.

        ee_vel: twist (v, omega), 6. ee_force: force (3) or wrench (force, torque), 6.
        """
        if self.holding:
            return True
        p = self.params
        reason = None
        if ee_vel is not None:
            vx, vy, vz, wx, wy, wz = (ee_vel.tolist() if isinstance(ee_vel, np.ndarray)
                                      else ee_vel)
            speed = math.sqrt(vx * vx + vy * vy + vz * vz)
            spin = math.sqrt(wx * wx + wy * wy + wz * wz)
            if not math.isfinite(speed + spin):
                reason = "measured velocity not finite"
            elif speed > p.max_linear_speed:
                reason = f"linear speed {speed:.3g} m/s > max_linear_speed {p.max_linear_speed}"
            elif spin > p.max_angular_speed:
                reason = f"angular speed {spin:.3g} rad/s > max_angular_speed {p.max_angular_speed}"
        if reason is None and ee_force is not None:
            wrench = ee_force.tolist() if isinstance(ee_force, np.ndarray) else list(ee_force)
            force = math.sqrt(wrench[0] ** 2 + wrench[1] ** 2 + wrench[2] ** 2)
            torque = math.sqrt(sum(v * v for v in wrench[3:6]))
            beta = p.force_filter
            if beta < 1.0 and math.isfinite(force + torque):
                force = self._force_filtered = self._force_filtered + beta * (
                    force - self._force_filtered)
                torque = self._torque_filtered = self._torque_filtered + beta * (
                    torque - self._torque_filtered)
            if not math.isfinite(force + torque):
                reason = "measured force not finite"
            elif force > p.max_force:
                reason = f"force {force:.3g} N > max_force {p.max_force}"
            elif torque > p.max_torque:
                reason = f"torque {torque:.3g} Nm > max_torque {p.max_torque}"
        if reason is not None:
            pose = [float(v) for v in ee_pos] + [float(v) for v in ee_quat]
            if not math.isfinite(sum(pose)):  # cannot hold a NaN pose: hold the last target
                pose = (list(self._last_target) if self._last_target is not None
                        and len(self._last_target) == 7 else pose)
            self.holding = True
            self.hold_reason = reason
            self.hold_target = np.array(pose)
        return self.holding
