"""The controller node's state machine in-process, deterministically: its callbacks are called
in a chosen order (no executor, no other process), so races that a loaded host makes rare in
tests/test_ros_nodes.py (a parameter set in the gap before a stale-state fault, a fault during
an e-stop) are each one test here."""

from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("rclpy")

from robo_rl.hardware.ros import pose_message, set_stamp  # noqa: E402

DOMAIN = 94                  # not test_ros_nodes' domain: nothing here should be discovered
JOINT_STATE_TIMEOUT = 0.05   # s: long enough that a tick right after a sample is fresh
INJECTING_TICKS = 60         # ticks moving along the commanded torque (the tank pays for them)


@pytest.fixture
def node():
    import rclpy
    from rclpy.parameter import Parameter

    from robo_rl.hardware.controller_node import ControllerNode
    from robo_rl.hardware.ros import use_ros_environment

    use_ros_environment(DOMAIN)
    context = rclpy.Context()
    rclpy.init(context=context)
    controller = ControllerNode(context=context, parameter_overrides=[
        Parameter("energy_tank", value=True),
        Parameter("joint_state_timeout", value=JOINT_STATE_TIMEOUT)])
    controller.trigger_configure()
    controller.trigger_activate()
    assert controller.lifecycle == "active"
    yield controller
    controller.trigger_deactivate()
    controller.destroy_node()
    rclpy.shutdown(context=context)


class Driver:
    """Feeds the node joint states with increasing stamps and runs its ticks by hand."""

    def __init__(self, node):
        self.node = node
        self.q = np.asarray(node.model.task.model.qpos0[:node.model.n_joints], dtype=float)
        self.stamp = 1

    def joint_state(self, qd=None) -> None:
        from sensor_msgs.msg import JointState

        n = self.node.model.n_joints
        msg = JointState(name=list(self.node._settings[""].joint_names),
                         position=self.q.tolist(),
                         velocity=(np.zeros(n) if qd is None else np.asarray(qd)).tolist())
        self.stamp += 1_000_000
        set_stamp(msg.header, self.stamp)
        self.node._on_joint_state(msg)

    def tick(self, qd=None) -> None:
        self.joint_state(qd)
        self.node._control_tick()

    def drain_tank(self) -> float:
        """Move the arm along the commanded torque (positive power) -> the tank level after."""
        from geometry_msgs.msg import PoseStamped

        self.tick()
        tick = self.node.tick
        target = tick.target_pos + np.array([0.0, 0.0, 0.03])
        self.node._on_pose(pose_message(PoseStamped(), "world", self.stamp, target,
                                        tick.target_quat))
        for _ in range(INJECTING_TICKS):
            torque = self.node.torque
            self.tick(0.2 * torque / max(np.linalg.norm(torque), 1e-9))
        return self.node.tick.tank.energy


def test_gain_set_without_a_fresh_state_keeps_the_tank_level(node):
    from rclpy.parameter import Parameter

    drive = Driver(node)
    level = drive.drain_tank()
    initial = node._settings["tank"].initial_energy
    assert level < initial - 1e-3, "the setup must leave the tank below its initial level"
    target = node.tick.target_pos.copy()
    time.sleep(1.5 * JOINT_STATE_TIMEOUT)  # the newest joint state is now stale
    result = node._on_set_parameters([Parameter("impedance.translational_stiffness",
                                                value=1500.0)])
    assert result.successful, result.reason
    drive.tick()  # a fresh state arrives before the next tick: the new gains apply now
    assert node.status_values()["state"] == "running"
    law = node.tick.controller.controller
    assert law.params.translational_stiffness == 1500.0
    # the restart kept the level: the tick after it can only have drawn (the target is still
    # moving toward the pose 3 cm up), where a restart at initial_energy would show a refill
    assert node.tick.tank.energy <= level + 1e-12
    np.testing.assert_allclose(node.tick.target_pos, target)


def test_a_fault_during_an_estop_still_reports_the_estop(node):
    from std_srvs.srv import Trigger

    drive = Driver(node)
    drive.tick()
    response = node._on_estop(Trigger.Request(), Trigger.Response())
    assert response.success and node.status_values()["state"] == "estop"
    time.sleep(1.5 * JOINT_STATE_TIMEOUT)
    node._control_tick()  # no joint state since: the watchdog faults
    status = node.status_values()
    assert node.fault is not None and "joint states stale" in node.fault
    # software (the env client) recovers an "error" by itself: the operator's stop must show
    assert status["state"] == "estop"
    assert status["hold_reason"].startswith("e-stop") and "joint states stale" in status[
        "hold_reason"]
    drive.joint_state()
    response = node._on_recover(Trigger.Request(), Trigger.Response())
    assert response.success and node.status_values()["state"] in ("running", "holding")
