"""What every robo_rl ROS 2 process shares: the loopback-only environment, QoS, and the checks
that turn incoming messages into numbers or a rejection reason (never an exception that stops
a node: a bad message is logged, counted and dropped, the last good value is kept).

This module and the other hardware/ modules are the only ones that import rclpy.
"""

from __future__ import annotations

import faulthandler
import math
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .config import MAX_DOMAIN_ID

# Discovery stays on this host. ROS_LOCALHOST_ONLY is ignored by the PyPI wheels; these are
# the settings that hold (Jazzy and newer).
LOOPBACK_DISCOVERY = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
NS_PER_S = 1_000_000_000
EXECUTOR_ENV = "ROBO_RL_ROS_EXECUTOR"   # events (default) | single: rclpy's SingleThreadedExecutor


def ros_environment(domain_id: int, base: dict | None = None) -> dict[str, str]:
    """An environment for a child ROS 2 process: loopback discovery and `domain_id`."""
    if not (isinstance(domain_id, int) and 0 <= domain_id <= MAX_DOMAIN_ID):
        raise ValueError(f"ROS_DOMAIN_ID {domain_id!r} must be an integer in 0..101 (the range "
                         "that works on every DDS vendor); set hardware.domain_id")
    env = dict(os.environ if base is None else base)
    env.update(LOOPBACK_DISCOVERY)
    env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


def use_ros_environment(domain_id: int) -> None:
    """Apply ros_environment to this process (before rclpy.init)."""
    os.environ.update(ros_environment(domain_id, base={}))


def import_rclpy():
    """rclpy, or a RuntimeError saying how to install the ROS 2 extra."""
    try:
        import rclpy  # noqa: F401
    except ImportError as error:
        raise RuntimeError("the ROS 2 hardware path needs rclpy: pip install 'robo_rl[ros]' (PyPI "
                           "ROS 2 wheels) or source a ROS 2 install before running; "
                           f"import failed: {error}") from error
    return rclpy


def sensor_qos(depth: int = 1):
    """Best effort, keep last: a late sample is worth less than the next one (1 kHz streams)."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.BEST_EFFORT)


def command_qos(depth: int = 1):
    """Reliable, keep last: commands must arrive, but only the newest one matters."""
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE)


def latched_qos():
    """Reliable, transient local, keep last 1: a node that subscribes late still gets the newest
    message (the scene of the current episode), as a ROS 1 latched topic."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def scene_message(msg, frame: str, t_ns: int, positions, quats):
    """Fill a geometry_msgs/PoseArray with one pose per fixture (MuJoCo mocap body, model order)."""
    from geometry_msgs.msg import Pose

    set_stamp(msg.header, t_ns)
    msg.header.frame_id = frame
    msg.poses = []
    for pos, quat in zip(positions, quats):   # MuJoCo quaternions are w, x, y, z
        pose = Pose()
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in pos)
        pose.orientation.w, pose.orientation.x, pose.orientation.y, pose.orientation.z = (float(v) for v in quat)
        msg.poses.append(pose)
    return msg


def read_scene(msg, fixtures: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions, quats w-first) of a scene PoseArray with one pose per fixture, or Rejected."""
    if len(msg.poses) != fixtures:
        raise Rejected(f"scene has {len(msg.poses)} poses for {fixtures} fixtures (another task?)")
    positions = np.array([[p.position.x, p.position.y, p.position.z] for p in msg.poses], dtype=np.float64)
    quats = np.array([[p.orientation.w, p.orientation.x, p.orientation.y, p.orientation.z] for p in msg.poses],
                     dtype=np.float64)
    if not (np.all(np.isfinite(positions)) and np.all(np.isfinite(quats))):
        raise Rejected("scene pose not finite (NaN/inf)")
    norms = np.linalg.norm(quats, axis=1)
    if np.any(np.abs(norms - 1.0) > 0.1):
        raise Rejected(f"scene orientation not a unit quaternion (norms {np.round(norms, 3).tolist()})")
    return positions, quats / norms[:, None]


class Rejected(ValueError):
    """A message that cannot be used; str() is the reason logged by the node."""


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def set_stamp(header, t_ns: int) -> None:
    header.stamp.sec, header.stamp.nanosec = divmod(int(t_ns), NS_PER_S)


@dataclass
class JointSample:
    q: np.ndarray
    qd: np.ndarray
    effort: np.ndarray
    stamp: int          # header stamp, ns


class JointStateReader:
    """sensor_msgs/JointState -> positions/velocities of the configured joints, in their order.

    Drivers send the joints in any order and often more of them (a gripper): names are matched;
    a missing joint, a length mismatch, NaN/inf, or a stamp not newer than the last accepted
    one (out of order) is a Rejected with the reason."""

    def __init__(self, joint_names: Sequence[str]):
        self.joint_names = tuple(joint_names)
        self.last_stamp: int | None = None
        self._order: tuple[tuple[str, ...], list[int]] | None = None

    def read(self, msg) -> JointSample:
        names = tuple(msg.name)
        if self._order is None or self._order[0] != names:
            missing = [n for n in self.joint_names if n not in names]
            if missing:
                raise Rejected(f"JointState lacks joints {missing} (got {list(names)}); set the "
                               "node's joint_names to the driver's names")
            self._order = (names, [names.index(n) for n in self.joint_names])
        index = self._order[1]
        n = len(names)
        if len(msg.position) != n or len(msg.velocity) != n:
            raise Rejected(f"JointState has {len(msg.position)} positions and "
                           f"{len(msg.velocity)} velocities for {n} names")
        position = np.asarray(msg.position, dtype=np.float64)[index]
        velocity = np.asarray(msg.velocity, dtype=np.float64)[index]
        if not np.all(np.isfinite(position)) or not np.all(np.isfinite(velocity)):
            raise Rejected("JointState position/velocity not finite (NaN/inf)")
        effort = (np.asarray(msg.effort, dtype=np.float64)[index] if len(msg.effort) == n
                  else np.zeros(len(index)))
        stamp = stamp_ns(msg.header.stamp)
        if self.last_stamp is not None and stamp <= self.last_stamp:
            raise Rejected(f"JointState stamp {stamp} ns is not newer than the last accepted "
                           f"{self.last_stamp} ns (out of order or a replayed message)")
        self.last_stamp = stamp
        return JointSample(position, velocity, effort, stamp)


class PoseReader:
    """geometry_msgs/PoseStamped -> (position, quaternion w x y z) in the base frame."""

    def __init__(self, base_frame: str):
        self.base_frame = base_frame
        self.last_stamp: int | None = None

    def read(self, msg) -> tuple[np.ndarray, tuple[float, float, float, float]]:
        if msg.header.frame_id != self.base_frame:
            raise Rejected(f"pose frame_id {msg.header.frame_id!r} is not the base frame "
                           f"{self.base_frame!r} (robo_rl does not transform poses; publish in "
                           f"{self.base_frame!r} or set base_frame)")
        p, o = msg.pose.position, msg.pose.orientation
        values = (p.x, p.y, p.z, o.w, o.x, o.y, o.z)
        if not all(math.isfinite(v) for v in values):
            raise Rejected("pose not finite (NaN/inf)")
        norm = math.sqrt(o.w * o.w + o.x * o.x + o.y * o.y + o.z * o.z)
        if norm < 1e-6:
            raise Rejected("pose orientation is the zero quaternion")
        stamp = stamp_ns(msg.header.stamp)
        if self.last_stamp is not None and stamp < self.last_stamp:
            raise Rejected(f"pose stamp {stamp} ns is older than the last accepted "
                           f"{self.last_stamp} ns (out of order)")
        self.last_stamp = stamp
        return np.array(values[:3]), (o.w / norm, o.x / norm, o.y / norm, o.z / norm)


def read_wrench(msg) -> list[float]:
    f, t = msg.wrench.force, msg.wrench.torque
    values = [f.x, f.y, f.z, t.x, t.y, t.z]
    if not all(math.isfinite(v) for v in values):
        raise Rejected("wrench not finite (NaN/inf)")
    return values


def read_stiffness(msg) -> np.ndarray:
    values = np.asarray(msg.data, dtype=np.float64)
    if values.shape != (6,) or not np.all(np.isfinite(values)):
        raise Rejected(f"stiffness needs 6 finite values (x y z rx ry rz), got {list(msg.data)}")
    return values


def pose_message(msg, frame: str, t_ns: int, pos: Sequence[float], quat: Sequence[float]):
    """Fill a PoseStamped in place."""
    msg.header.frame_id = frame
    set_stamp(msg.header, t_ns)
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in pos)
    o = msg.pose.orientation
    o.w, o.x, o.y, o.z = (float(v) for v in quat)
    return msg


def declare_parameters(node, values: dict) -> dict:
    """Declare every parameter with its default; -> {name: value after overrides}. An empty
    array (None of an optional tuple) has no ROS 2 type of its own: it is declared with
    dynamic typing so a later set may give it values."""
    from rcl_interfaces.msg import ParameterDescriptor

    for name, value in values.items():
        if isinstance(value, list) and not value:
            node.declare_parameter(name, value, ParameterDescriptor(dynamic_typing=True))
        else:
            node.declare_parameter(name, value)
    return {name: node.get_parameter(name).value for name in values}


def fast_executor(context=None):
    """rclpy's EventsExecutor (C++ event queue) where this rclpy has it, else the
    SingleThreadedExecutor. Why: a 1 kHz timer node spun by SingleThreadedExecutor took a whole
    core here (the wait set is rebuilt in Python on every spin); see BENCHMARKS.md."""
    try:
        if os.environ.get(EXECUTOR_ENV, "events") == "single":
            raise ImportError(f"{EXECUTOR_ENV}=single")
        from rclpy.experimental import EventsExecutor
    except ImportError:
        from rclpy.executors import SingleThreadedExecutor

        return SingleThreadedExecutor(context=context)
    return EventsExecutor(context=context)


SPIN_TIMEOUT_S = 0.1


def spin(executor, context) -> None:
    """Spin until the context shuts down. spin_once in a loop: the EventsExecutor's own spin()
    starved a 1 kHz timer while busy-waiting a core here (rclpy 9.1.2)."""
    while context.ok():
        executor.spin_once(timeout_sec=SPIN_TIMEOUT_S)


def close_node(executor, node, context, spin_thread) -> None:
    """Tear down a node that runs in its own context, spun by ``spin_thread``: executor, node,
    then the context (which ends the spin loop), then the thread."""
    try:
        executor.shutdown(timeout_sec=1.0)
        node.destroy_node()
    finally:
        if context.ok():
            context.try_shutdown()
    spin_thread.join(timeout=2.0)


def run_node(make_node, argv: Sequence[str] | None = None) -> int:
    """rclpy.init, spin the node until Ctrl-C / SIGTERM, shut down cleanly -> exit code.
    A ValueError/RuntimeError from building the node (bad parameters) is one logged line."""
    import sys

    argv = list(sys.argv if argv is None else argv)
    ours = argv[1:argv.index("--ros-args")] if "--ros-args" in argv else argv[1:]
    if "-h" in ours or "--help" in ours:
        print(sys.modules[make_node.__module__].__doc__)
        return 0
    rclpy = import_rclpy()
    from rclpy.executors import ExternalShutdownException

    faulthandler.enable()  # a crash in the DDS layer prints where it happened (node logs)
    # rclpy's own handlers (SIGINT and SIGTERM) shut the context down, which ends spin()
    rclpy.init(args=argv)
    node = None
    code = 0
    try:
        node = make_node()
        executor = fast_executor()
        executor.add_node(node)
        spin(executor, node.context)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, RuntimeError) as error:
        print(f"robo-rl: error: {error}", file=sys.stderr, flush=True)
        code = 2
    finally:
        if node is not None:
            try:
                close = getattr(node, "close", None)
                if close is not None:
                    close()
                node.destroy_node()
            except Exception:  # noqa: BLE001 - the context is already gone: nothing to free
                pass
        rclpy.try_shutdown()
    return code
