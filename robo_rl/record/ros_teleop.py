"""source=ros: a 6-DoF command from a ROS 2 topic (geometry_msgs/Twist, e.g. spacenav_node's
/spacenav/twist, or sensor_msgs/Joy from a gamepad): the settings and the message -> action
mapping. The node that subscribes is robo_rl.hardware.teleop.RosTeleop (only hardware/ imports
rclpy), imported only when this source is used.

Twist: action = linear.xyz / max_linear (and angular.xyz / max_angular when the task rotates),
clipped to [-1, 1]. Joy: robot axis j takes ``axes[joy_axes[j]] * joy_signs[j]`` (-1: none).
A topic silent for ``message_timeout`` seconds commands zero motion: a dead publisher never
keeps the arm moving.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robo_rl.record.teleop import SIX_DOF

MESSAGES = ("twist", "joy")
NO_AXIS = -1


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


__all__ = ["RosTeleopConfig", "twist_to_six_dof", "joy_to_six_dof"]
