"""Measured arm state handed to the controllers each tick."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ArmState:
    """One sample of the arm, all in the world (base) frame.

    q, qd:     joint positions / velocities, shape (n,).
    ee_pos:    end-effector (TCP) position, shape (3,).
    ee_quat:   end-effector orientation, unit quaternion (w, x, y, z).
    jacobian:  geometric Jacobian, shape (6, n), linear-velocity rows first, then angular.
    coriolis:  Coriolis/centrifugal joint torques to feed forward, shape (n,), or None.
               Gravity is not part of the law: the robot (or the simulator) compensates it.
    ee_vel:    end-effector twist (v, omega), shape (6,), or None to use jacobian @ qd.

    No copying or checking happens here (this object is built 1000 times a second);
    ``validate()`` checks shapes and is called by the controllers' ``reset``.
    """

    q: np.ndarray
    qd: np.ndarray
    ee_pos: np.ndarray
    ee_quat: np.ndarray
    jacobian: np.ndarray
    coriolis: np.ndarray | None = None
    ee_vel: np.ndarray | None = None

    def ee_velocity(self) -> np.ndarray:
        """End-effector twist (v, omega): ``ee_vel`` if given, else ``jacobian @ qd``."""
        if self.ee_vel is not None:
            return self.ee_vel
        return np.dot(self.jacobian, self.qd)

    def validate(self, n_joints: int) -> None:
        """Raise ValueError naming the field whose shape does not match an n-joint arm."""
        expected = {"q": (n_joints,), "qd": (n_joints,), "ee_pos": (3,), "ee_quat": (4,),
                    "jacobian": (6, n_joints)}
        if self.coriolis is not None:
            expected["coriolis"] = (n_joints,)
        if self.ee_vel is not None:
            expected["ee_vel"] = (6,)
        for name, shape in expected.items():
            got = np.shape(getattr(self, name))
            if got != shape:
                raise ValueError(f"ArmState.{name} has shape {got}, expected {shape} for an arm "
                                 f"with n_joints={n_joints}; fix the state builder (Jacobian is "
                                 "6 x n with linear rows first, quaternion is (w, x, y, z))")
