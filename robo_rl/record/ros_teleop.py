"""source=ros: a 6-DoF command from a ROS 2 topic (geometry_msgs/Twist, e.g. spacenav_node's
/spacenav/twist, or sensor_msgs/Joy from a gamepad), read by a small node in its own rclpy
context, spun by a background thread. rclpy is imported only when this source is used;
discovery stays on loopback (robo_rl.hardware.ros.LOOPBACK_DISCOVERY) as for every robo_rl node.

Twist: action = linear.xyz / max_linear (and angular.xyz / max_angular when the task rotates),
clipped to [-1, 1]. Joy: robot axis j takes ``axes[joy_axes[j]] * joy_signs[j]`` (-1: none).
A topic silent for ``message_timeout`` seconds commands zero motion: a dead publisher never
keeps the arm moving.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from robo_rl.record.teleop import SIX_DOF, TeleopError

MESSAGES = ("twist", "joy")
NO_AXIS = -1
NODE_NAME = "robo_rl_record_teleop"
QUEUE_DEPTH = 10
SPIN_TIMEOUT_S = 0.05   # the spin thread checks for shutdown this often
WAIT_POLL_S = 0.02


@dataclass
class RosTeleopConfig:
    """source=ros."""
    topic: str = "/spacenav/twist"
    message: str = "twist"        # twist (geometry_msgs/Twist) | joy (sensor_msgs/Joy)
    max_linear: float = 0.1       # Twist linear speed (m/s) that gives |action| = 1
    max_angular: float = 0.5      # Twist angular speed (rad/s) that gives |action| = 1
    # Joy axis index of robot x, y, z, rx, ry, rz (-1: none); the default: a gamepad's left stick and right stick y
    joy_axes: list[int] = field(default_factory=lambda: [1, 0, 4, NO_AXIS, NO_AXIS, NO_AXIS])
    joy_signs: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    domain_id: int | None = None  # ROS_DOMAIN_ID; null: hardware.domain_id with hardware=twin|real, else 0
    message_timeout: float = 0.5  # s without a message before the command drops to zero
    startup_timeout: float = 10.0  # s to wait for the first message before recording starts

    def problems(self) -> list[str]:
        found = []
        if self.message not in MESSAGES:
            found.append(f"ros.message must be one of {MESSAGES} (got {self.message})")
        for name in ("max_linear", "max_angular", "message_timeout", "startup_timeout"):
            if not getattr(self, name) > 0:
                found.append(f"ros.{name} must be > 0 (got {getattr(self, name)})")
        if len(self.joy_axes) != SIX_DOF or any(axis < NO_AXIS for axis in self.joy_axes):
            found.append(f"ros.joy_axes must be six Joy axis indices (-1: none) (got {list(self.joy_axes)})")
        if len(self.joy_signs) != SIX_DOF:
            found.append(f"ros.joy_signs must have six entries (got {list(self.joy_signs)})")
        if not self.topic.startswith("/"):
            found.append(f"ros.topic must be an absolute topic name starting with / (got {self.topic})")
        return found


def twist_to_six_dof(linear, angular, cfg: RosTeleopConfig) -> np.ndarray:
    """[linear / max_linear, angular / max_angular] clipped to [-1, 1]."""
    six = np.concatenate([np.asarray(linear, float) / cfg.max_linear, np.asarray(angular, float) / cfg.max_angular])
    return np.clip(six, -1.0, 1.0)


def joy_to_six_dof(axes, cfg: RosTeleopConfig) -> np.ndarray:
    """Robot axis j <- axes[joy_axes[j]] * joy_signs[j]; a missing or unmapped axis is 0."""
    axes = list(axes)
    six = np.zeros(SIX_DOF)
    for j, (index, sign) in enumerate(zip(cfg.joy_axes, cfg.joy_signs)):
        if index != NO_AXIS and index < len(axes):
            six[j] = float(axes[index]) * float(sign)
    return np.clip(six, -1.0, 1.0)


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
        try:
            self.executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        finally:
            if self.context.ok():
                self.context.try_shutdown()
        self.thread.join(timeout=2.0)


__all__ = ["RosTeleop", "RosTeleopConfig", "twist_to_six_dof", "joy_to_six_dof"]
