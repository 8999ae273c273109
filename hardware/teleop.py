"""The ROS 2 side of `robo-rl record source=ros`: a small node that subscribes to a teleop topic
(geometry_msgs/Twist, e.g. spacenav_node's /spacenav/twist, or sensor_msgs/Joy from a gamepad) in its
own rclpy context, spun by a background thread. Only hardware/ imports rclpy (docs/architecture.md);
the message -> action mapping and the settings are plain numpy in robo_rl.record.ros_teleop.
Discovery stays on loopback (LOOPBACK_DISCOVERY) as for every robo_rl node.
"""
from __future__ import annotations

import threading
import time

import numpy as np

from robo_rl.hardware.ros import close_node
from robo_rl.record.ros_teleop import RosTeleopConfig, joy_to_six_dof, twist_to_six_dof
from robo_rl.record.teleop import SIX_DOF, TeleopError

NODE_NAME = "robo_rl_record_teleop"
QUEUE_DEPTH = 10
SPIN_TIMEOUT_S = 0.05   # the spin thread checks for shutdown this often
WAIT_POLL_S = 0.02


class RosTeleop:
    """The newest message of the teleop topic as a 6-DoF command (a MotionDevice)."""

    def __init__(self, cfg: RosTeleopConfig, domain_id: int):
        import os

        from robo_rl.hardware.ros import LOOPBACK_DISCOVERY, import_rclpy

        try:
            rclpy = import_rclpy()
        except RuntimeError as error:
            raise TeleopError(f"source=ros: {error}") from None
        from rclpy.executors import SingleThreadedExecutor

        os.environ.update(LOOPBACK_DISCOVERY)
        self.cfg = cfg
        self.lock = threading.Lock()
        self.six = np.zeros(SIX_DOF)
        self.received_at: float | None = None
        self.messages = 0
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        try:
            self.node = rclpy.create_node(NODE_NAME, context=self.context)
            if cfg.message == "twist":
                from geometry_msgs.msg import Twist

                self.node.create_subscription(Twist, cfg.topic, self._on_twist, QUEUE_DEPTH)
            else:
                from sensor_msgs.msg import Joy

                self.node.create_subscription(Joy, cfg.topic, self._on_joy, QUEUE_DEPTH)
            self.executor = SingleThreadedExecutor(context=self.context)
            self.executor.add_node(self.node)
        except BaseException:
            self.context.try_shutdown()
            raise
        self.thread = threading.Thread(target=self._spin, name="robo_rl_record_teleop", daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            while self.context.ok():
                self.executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)
        except Exception:  # the context was shut down by close()
            pass

    def _store(self, six: np.ndarray) -> None:
        if not np.all(np.isfinite(six)):
            return  # a bad message is dropped; the last good command (or its timeout) stands
        with self.lock:
            self.six, self.received_at = six, time.monotonic()
            self.messages += 1

    def _on_twist(self, msg) -> None:
        self._store(twist_to_six_dof((msg.linear.x, msg.linear.y, msg.linear.z),
                                     (msg.angular.x, msg.angular.y, msg.angular.z), self.cfg))

    def _on_joy(self, msg) -> None:
        self._store(joy_to_six_dof(msg.axes, self.cfg))

    def wait_for_first_message(self) -> None:
        deadline = time.monotonic() + self.cfg.startup_timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.received_at is not None:
                    return
            time.sleep(WAIT_POLL_S)
        raise TeleopError(f"source=ros: no {self.cfg.message} message on {self.cfg.topic} within "
                          f"{self.cfg.startup_timeout} s (ROS_DOMAIN_ID {self._domain()}, loopback discovery); "
                          f"start the teleop node on this host and domain, or set ros.topic / ros.domain_id")

    def _domain(self) -> int:
        return int(self.context.get_domain_id()) if hasattr(self.context, "get_domain_id") else -1

    def read(self) -> tuple[np.ndarray, float | None]:
        with self.lock:
            six, received_at = self.six.copy(), self.received_at
        if received_at is None or time.monotonic() - received_at > self.cfg.message_timeout:
            return np.zeros(SIX_DOF), None
        return six, None

    def close(self) -> None:
        close_node(self.executor, self.node, self.context, self.thread)
