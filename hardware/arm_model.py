"""The arm's kinematic and dynamic model for nodes that see only joint measurements.

A real-arm controller computes the TCP pose, the Jacobian and the Coriolis torques from the
measured joints with a model of the robot (libfranka's model, Pinocchio on a URDF). robo_rl's
model is the MJCF the simulated tasks use (robo_rl.tasks), so the controller node computes
exactly what the simulated task step hands the same controller: ArmTask._arm_state of the
measured (q, qd), with nothing integrated.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robo_rl.controllers import ArmState


class ArmModel:
    """ArmState from measured joints, through a robo_rl.tasks task's model (never stepped)."""

    def __init__(self, task: str = "reach", **task_options: Any):
        from robo_rl.tasks import make_task

        self.task = make_task(task, obs_type="state", seed=0, **task_options)
        self.n_joints = self.task.n_arm

    def state(self, q, qd, copy: bool = False) -> ArmState:
        """ArmState at (q, qd): kinematics, Jacobian and bias forces of the model. copy=False
        returns the one preallocated state the next call overwrites."""
        import mujoco

        task = self.task
        d = task.data
        n = self.n_joints
        d.qpos[:n] = q
        d.qvel[:n] = qd
        # position- and velocity-dependent quantities only (what mj_step1 computes), no
        # integration: the model follows the measurement
        mujoco.mj_step1(task.model, d)
        return task._arm_state(copy_arrays=copy)

    @property
    def home_quat(self) -> tuple[float, ...]:
        return self.task.home_quat
