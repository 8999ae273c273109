"""Robot control laws in plain numpy (no torch, MuJoCo or ROS): the same objects run inside a
MuJoCo task step and inside the 1 kHz ROS 2 controller node. See docs/contracts.md."""

from .impedance import CartesianImpedanceController, ImpedanceParams, huber_storage
from .passivity import EnergyTank, EnergyTankParams, PassivityFilter
from .quaternion import (quat_conjugate, quat_error, quat_multiply, quat_normalize,
                         quat_slerp, quat_to_rotvec, rotvec_to_quat)
from .safety import SafetyLimits, SafetyParams
from .state import ArmState
from .tick import ControlTick

__all__ = ["ArmState", "ControlTick", "ImpedanceParams", "CartesianImpedanceController", "huber_storage",
           "EnergyTankParams", "EnergyTank", "PassivityFilter", "SafetyParams", "SafetyLimits",
           "quat_conjugate", "quat_error", "quat_multiply", "quat_normalize", "quat_slerp",
           "quat_to_rotvec", "rotvec_to_quat"]
