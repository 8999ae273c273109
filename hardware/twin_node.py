"""The MuJoCo digital twin: a robo_rl.tasks arm behind the topics a real arm driver serves.

    ros2 run robo_rl twin_node --ros-args -p task:=reach
    python -m robo_rl.hardware.twin_node --ros-args -p rate_hz:=1000.0

Like ros2_control with a JointGroupEffortController on a torque-controlled arm, it reads
effort commands (std_msgs/Float64MultiArray, one torque per joint in joint_names order) and
publishes sensor_msgs/JointState (position, velocity, applied effort) after every physics step,
the wrist F/T as geometry_msgs/WrenchStamped (sensor frame, tool weight removed, as the real
arm's estimate subtracts the configured load), and camera frames as sensor_msgs/Image (rgb8).
The task's fixtures (MuJoCo mocap bodies, e.g. peg_insert's hole) stand where the latest
geometry_msgs/PoseArray on the scene topic says: the env client publishes each episode's.

Time: the physics runs in real time. A 1 / rate_hz timer steps the simulation as many times as
wall-clock time says it is due, with the newest torque command held over each step, but one
command over at most max_command_hold seconds: when the controller is late or the twin was
descheduled, the rest of the stall is dropped (physics time slows down) rather than integrated
with a stale torque, which a real arm's 1 kHz loop never does and which destabilises the
impedance loop on a shared 2-core host. A command older than command_timeout is replaced by
zero torque, as an arm driver does when its client dies. Gravity is compensated by the model
(gravcomp), like the real arm's.
"""

from __future__ import annotations

import time

import numpy as np

from .config import TwinConfig
from .params import TWIN_GROUPS, build, defaults
from .ros import (Rejected, command_qos, declare_parameters, import_rclpy, latched_qos, read_scene, run_node,
                  sensor_qos, set_stamp)

import_rclpy()
from geometry_msgs.msg import PoseArray, WrenchStamped  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

NODE_NAME = "twin"


class TwinNode(Node):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        values = declare_parameters(self, defaults(TWIN_GROUPS))
        built = build(TWIN_GROUPS, values)
        self.config: TwinConfig = built[""]
        topics = built["topics"]
        c = self.config
        if not c.rate_hz > 0:
            raise ValueError(f"twin rate_hz={c.rate_hz} must be > 0")
        from robo_rl.tasks import make_task  # first: it picks the headless GL backend

        import mujoco

        self._mujoco = mujoco
        self.dt = 1.0 / c.rate_hz
        if not c.max_command_hold > 0:
            raise ValueError(f"twin max_command_hold={c.max_command_hold} must be > 0 (seconds)")
        self.hold_steps = max(1, int(round(c.max_command_hold / self.dt)))
        self.task = make_task(c.task, obs_type="state", seed=c.seed, physics_dt=self.dt,
                              control_hz=c.rate_hz, image_size=c.image_size, camera=c.camera)
        self.task.reset(seed=c.seed)
        self.model, self.data = self.task.model, self.task.data
        n = self.task.n_arm
        if len(c.joint_names) != n:
            raise ValueError(f"twin joint_names has {len(c.joint_names)} names for a {n}-joint arm")
        self.n = n
        self.ctrl_low = self.model.actuator_ctrlrange[:n, 0].copy()
        self.ctrl_high = self.model.actuator_ctrlrange[:n, 1].copy()
        self.command = np.zeros(n)
        self.command_time: float | None = None
        self.steps_on_command = 0  # physics steps the newest command has been held over
        self.rejected = 0

        self.joint_pub = self.create_publisher(JointState, topics.joint_states, sensor_qos())
        self.wrench_pub = self.create_publisher(WrenchStamped, topics.wrench, sensor_qos())
        self.image_pub = (self.create_publisher(Image, topics.image, sensor_qos())
                          if c.image_rate_hz > 0 else None)
        self.create_subscription(Float64MultiArray, topics.effort_commands, self._on_command,
                                 command_qos())
        # the task's fixtures (mocap bodies: peg_insert's hole) go where the env client's episode puts them
        self.create_subscription(PoseArray, topics.scene, self._on_scene, latched_qos())
        self.scenes = 0
        self._joint_msg = JointState()
        self._joint_msg.name = list(c.joint_names)
        self._wrench_msg = WrenchStamped()
        self._wrench_msg.header.frame_id = c.wrench_frame
        self.start = time.monotonic()
        self.steps = 0
        self.dropped_steps = 0
        self.next_image = self.start
        self.timer = self.create_timer(self.dt, self._tick)
        self.get_logger().info(f"twin of arm/{c.task} at {c.rate_hz:g} Hz: "
                               f"{topics.joint_states}, {topics.effort_commands}")

    def _on_command(self, msg: Float64MultiArray) -> None:
        try:
            tau = np.asarray(msg.data, dtype=np.float64)
            if tau.shape != (self.n,):
                raise Rejected(f"effort command has {tau.size} values for {self.n} joints")
            if not np.all(np.isfinite(tau)):
                raise Rejected("effort command not finite (NaN/inf)")
        except Rejected as reason:
            self.rejected += 1
            self.get_logger().warning(f"rejected: {reason}", throttle_duration_sec=1.0)
            return
        np.clip(tau, self.ctrl_low, self.ctrl_high, out=self.command)
        self.command_time = time.monotonic()
        self.steps_on_command = 0

    def _on_scene(self, msg: PoseArray) -> None:
        try:
            positions, quats = read_scene(msg, self.model.nmocap)
        except Rejected as reason:
            self.rejected += 1
            self.get_logger().warning(f"rejected scene: {reason}", throttle_duration_sec=1.0)
            return
        self.data.mocap_pos[:] = positions
        self.data.mocap_quat[:] = quats
        self.scenes += 1

    def _tick(self) -> None:
        now = time.monotonic()
        due = int((now - self.start) / self.dt) - self.steps
        if due <= 0:
            return
        fresh = (self.command_time is not None
                 and now - self.command_time <= self.config.command_timeout)
        # a fresh command is held over at most hold_steps steps in all; zero torque
        # (no fresh command) at most that many per callback, so a long stall is not replayed
        budget = self.hold_steps - (self.steps_on_command if fresh else 0)
        run = max(0, min(due, budget))
        self.dropped_steps += due - run
        self.steps += due  # the wall clock moves on: dropped steps are never replayed
        ctrl = self.data.ctrl
        ctrl[:self.n] = self.command if fresh else 0.0
        for _ in range(run):
            self._mujoco.mj_step(self.model, self.data)
        self.steps_on_command += run
        # published even when no step ran: the plant is paused, so its state is current
        self._publish_state()
        if self.image_pub is not None and now >= self.next_image:
            self.next_image = now + 1.0 / self.config.image_rate_hz
            self._publish_image()

    def _publish_state(self) -> None:
        t_ns = self.get_clock().now().nanoseconds
        d, n = self.data, self.n
        msg = self._joint_msg
        set_stamp(msg.header, t_ns)
        msg.position = d.qpos[:n].tolist()
        msg.velocity = d.qvel[:n].tolist()
        msg.effort = d.ctrl[:n].tolist()
        self.joint_pub.publish(msg)
        w = self.task._wrench()  # the last mj_step's sensor values, one step old (as tasks)
        wm = self._wrench_msg
        set_stamp(wm.header, t_ns)
        f, t = wm.wrench.force, wm.wrench.torque
        f.x, f.y, f.z, t.x, t.y, t.z = (float(v) for v in w)
        self.wrench_pub.publish(wm)

    def _publish_image(self) -> None:
        size = self.config.image_size
        frame = self.task._render(self.config.camera, size, size)
        msg = Image()
        set_stamp(msg.header, self.get_clock().now().nanoseconds)
        msg.header.frame_id = self.config.camera
        msg.height, msg.width = frame.shape[:2]
        msg.encoding, msg.step = "rgb8", frame.shape[1] * 3
        msg.data = frame.tobytes()
        self.image_pub.publish(msg)


def main(argv=None) -> int:
    return run_node(TwinNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
