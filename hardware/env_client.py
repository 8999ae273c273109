"""The robot env client: the gymnasium API of an arm task, over ROS 2, at the policy rate.

    robo-rl train task=arm/reach hardware=twin      # twin + controller brought up by robo_rl
    robo-rl train task=arm/reach hardware=real      # attach to a running arm + controller

Each step: the task's own action mapping (ArmTask.apply_action: set-point delta, SafetyLimits
workspace clip) gives the equilibrium pose, published as PoseStamped; the client waits until
the policy period (1 / control_hz) ends on a fixed grid; the newest JointState and
WrenchStamped are written into the task's model (never stepped: it is the arm model), and the
task's own ArmTask.finish_step computes the observation, the reward through the reward module,
success and termination -- so observations and rewards are the simulated task's, number for
number, and a policy trained in one runs in the other.

Between steps a keep-alive thread re-publishes the last equilibrium at stream_hz, so a learner
update or a checkpoint write does not look like a dead client to the controller's watchdog; a
dead client (process gone) stops the stream and the controller holds.

reset(): recover the controller if it holds or is in its error state (logged), sample the
episode (goal, start pose) with the task's RNG, move the equilibrium to the start pose at
reset_speed, wait until the arm is there and has settled, then begin the episode. A real arm
cannot teleport, so this is how episodes start on the twin too.

Energy and holds come from the controller node's status (diagnostic_msgs): the energy ledger is
read at status_rate_hz, so a step's energy_cost is the ledger's change between the status
samples around it; a safety trip ("holding" with a trip reason) truncates the episode as in
simulation. With controller=external (a C++ impedance controller speaking the same topics)
there is no status: energy terms are 0 and holds are not seen.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from robo_rl.envs.arm import PREFIX, ArmBackend
from robo_rl.envs.config import EnvConfig

from robo_rl.loops.pacing import ControlPacer

from .config import RobotEnvConfig
from .ros import (LOOPBACK_DISCOVERY, JointStateReader, Rejected, close_node, command_qos,
                  import_rclpy, latched_qos, pose_message, read_wrench, scene_message, sensor_qos, spin)

log = logging.getLogger(__name__)

# Tasks whose state the client can observe from joint states and the F/T sensor alone: the goal
# is the client's own, and a fixture (peg_insert's hole) is put where the client says on the scene
# topic at each reset. push (a free block) needs object poses from a tracker, not built yet;
# contact_maze's reset would need a path out of and back into the maze's slot.
SUPPORTED_TASKS = ("reach", "peg_insert")
RESET_STREAM_HZ = 50.0        # equilibrium messages per second while moving to a start pose
SETTLED_SPEED = 0.01          # m/s: below this TCP speed the arm counts as settled
STATUS_WAIT_S = 0.2           # how long a recover call waits for the next status sample
RECOVER_ATTEMPTS = 5          # recover calls before reset() gives up
TRIP_FREE_REASONS = ("", "equilibrium stale")  # holds that are not safety trips


class _MoveInterrupted(Exception):
    """The controller tripped, errored or was e-stopped during a reset move."""


@dataclass
class StatusLedger:
    """The controller status as the ledger ArmTask.finish_step reads (see ControlTick)."""

    energy_injected: float = 0.0
    energy_returned: float = 0.0
    energy_dissipated: float = 0.0
    rejected: str | None = None
    holding: bool = False
    hold_reason: str | None = None


class RobotLink:
    """The rclpy side: one node in its own context, spun by a background thread; the newest
    joint state, wrench, image and controller status; publishers for the equilibrium."""

    def __init__(self, hw: RobotEnvConfig, joint_names):
        import os

        rclpy = import_rclpy()
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PoseArray, PoseStamped, WrenchStamped
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import Float32MultiArray, Float64MultiArray
        from std_srvs.srv import Trigger

        os.environ.update(LOOPBACK_DISCOVERY)
        self.hw = hw
        topics = hw.topics
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=hw.domain_id)
        self.node = rclpy.create_node("robo_rl_env", context=self.context)
        self.lock = threading.Lock()
        self.joints = JointStateReader(joint_names)
        self.sample = None
        self.sample_time = 0.0
        self.wrench = np.zeros(6)
        self.image: np.ndarray | None = None
        self.status: dict[str, str] = {}
        self.status_time = 0.0
        self.rejected = 0
        self._pose_type, self._stiffness_type = PoseStamped, Float64MultiArray
        self._trigger = Trigger
        self._equilibrium: tuple[np.ndarray, tuple] | None = None
        self._stiffness: np.ndarray | None = None
        n = self.node
        n.create_subscription(JointState, topics.joint_states, self._on_joint_state, sensor_qos())
        n.create_subscription(WrenchStamped, topics.wrench, self._on_wrench, sensor_qos())
        n.create_subscription(Image, topics.image, self._on_image, sensor_qos())
        n.create_subscription(DiagnosticArray, topics.status, self._on_status, command_qos(10))
        self.pose_pub = n.create_publisher(PoseStamped, topics.equilibrium_pose, command_qos())
        self.stiffness_pub = n.create_publisher(Float64MultiArray, topics.stiffness, command_qos())
        self.recover_client = n.create_client(Trigger, topics.recover)
        self.estop_client = n.create_client(Trigger, topics.estop)
        n.create_timer(1.0 / hw.stream_hz, self._keep_alive)
        self.action_pub = n.create_publisher(Float32MultiArray, topics.action, command_qos(10))
        self._scene_type = PoseArray
        self.scene_pub = n.create_publisher(PoseArray, topics.scene, latched_qos())
        self._create_entities(n)
        # rclpy's SingleThreadedExecutor here, not the nodes' EventsExecutor: in the learner's
        # (or the tests') process beside other clients the EventsExecutor aborted the process
        # (seen again in a clean-clone CI run); it would cut this process's CPU 84% -> 40%
        from rclpy.executors import SingleThreadedExecutor

        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(n)
        self.thread = threading.Thread(target=self._spin, name="robo_rl_env_ros", daemon=True)
        self.thread.start()

    def _create_entities(self, node) -> None:
        """Subclasses add subscriptions/publishers here (before the executor spins)."""

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            spin(self.executor, self.context)
        except (ExternalShutdownException, Exception):  # context shut down by close()
            pass

    # ------------------------------------------------------------------ inputs
    def _on_joint_state(self, msg) -> None:
        try:
            sample = self.joints.read(msg)
        except Rejected as reason:
            self.rejected += 1
            self.node.get_logger().warning(f"rejected joint state: {reason}",
                                        throttle_duration_sec=1.0)
            return
        with self.lock:
            self.sample, self.sample_time = sample, time.monotonic()

    def _on_wrench(self, msg) -> None:
        try:
            values = read_wrench(msg)
        except Rejected:
            self.rejected += 1
            return
        with self.lock:
            self.wrench = np.asarray(values)

    def _on_image(self, msg) -> None:
        if msg.encoding != "rgb8":
            self.rejected += 1
            return
        frame = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
        with self.lock:
            self.image = frame

    def _on_status(self, msg) -> None:
        for status in msg.status:
            values = {kv.key: kv.value for kv in status.values}
            if "state" in values:
                with self.lock:
                    self.status, self.status_time = values, time.monotonic()

    # ------------------------------------------------------------------ outputs
    def command(self, pos, quat, stiffness=None) -> None:
        with self.lock:
            self._equilibrium = (np.array(pos, dtype=np.float64), tuple(quat))
            if stiffness is not None:
                self._stiffness = np.array(stiffness, dtype=np.float64)
        self._publish()

    def _keep_alive(self) -> None:
        if self._equilibrium is not None:
            self._publish()

    def _publish(self) -> None:
        with self.lock:
            equilibrium, stiffness = self._equilibrium, self._stiffness
        pos, quat = equilibrium
        msg = pose_message(self._pose_type(), self.hw.base_frame,
                           self.node.get_clock().now().nanoseconds, pos, quat)
        self.pose_pub.publish(msg)
        if stiffness is not None:
            self.stiffness_pub.publish(self._stiffness_type(data=stiffness.tolist()))

    def publish_scene(self, positions, quats) -> None:
        """Where the task's fixtures stand this episode (latched: a twin that starts later gets it)."""
        msg = scene_message(self._scene_type(), self.hw.base_frame, self.node.get_clock().now().nanoseconds,
                            positions, quats)
        self.scene_pub.publish(msg)

    def stop_streaming(self) -> None:
        with self.lock:
            self._equilibrium = None

    def call(self, client, timeout: float) -> tuple[bool, str]:
        if not client.wait_for_service(timeout_sec=timeout):
            return False, f"service {client.srv_name} not available within {timeout} s"
        future = client.call_async(self._trigger.Request())
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.005)
        if not future.done():
            return False, f"service {client.srv_name} did not answer within {timeout} s"
        result = future.result()
        return bool(result.success), str(result.message)

    def latest(self):
        with self.lock:
            return self.sample, self.sample_time, self.wrench.copy(), dict(self.status)

    def close(self) -> None:
        self.stop_streaming()
        close_node(self.executor, self.node, self.context, self.thread)


class RosArmBackend(ArmBackend):
    """An arm task's Backend whose physics is a ROS 2 arm (twin or real); see the module doc."""

    shares_robot = True  # one arm: the training loop evaluates on this same env

    def __init__(self, name: str, cfg: EnvConfig, seed: int, hw: RobotEnvConfig):
        task = name.removeprefix(PREFIX)
        if task not in SUPPORTED_TASKS:
            raise ValueError(f"hardware={hw.kind} runs {[PREFIX + t for t in SUPPORTED_TASKS]} "
                             f"only (their state is the arm's and the goal); {name} needs object "
                             "poses from a tracker, which robo_rl does not read yet")
        if cfg.obs_type != "state":
            raise ValueError(f"hardware={hw.kind} supports task.obs_type=state for now (camera "
                             f"frames arrive on {hw.topics.image} but pixel observations over ROS "
                             "are not wired yet)")
        super().__init__(name, cfg, seed)   # the task: model, action mapping, reward, checks
        self.hw = hw
        self.task_env = self._env
        self.dt = float(self._env.dt)
        self.processes = None
        if hw.kind == "twin":
            from .launcher import bring_up

            self.processes = bring_up(hw, task, self._env, record=hw.record)
        elif hw.kind != "real":
            raise ValueError(f"hardware.kind={hw.kind!r} must be twin or real")
        try:
            self.link = RobotLink(hw, self._joint_names())
            self._wait_for_joint_states(hw.startup_timeout)
        except BaseException:
            self.close()
            raise
        self.pacer = ControlPacer(self.dt)   # the policy period's fixed grid
        self._status_at_step: dict[str, str] = {}

    def _joint_names(self):
        return self.hw.joint_names

    # ------------------------------------------------------------------ measurement
    def _wait_for_joint_states(self, timeout: float) -> None:
        """Until joint states (and, with robo_rl's controller, its status) arrive; a child
        process of the bring-up that dies meanwhile is reported with its log."""
        deadline = time.monotonic() + timeout
        want_status = self.hw.controller == "robo_rl"
        while time.monotonic() < deadline:
            if self.processes is not None:
                self.processes.check_alive()
            sample, received, _, status = self.link.latest()
            fresh = sample is not None and time.monotonic() - received < self.hw.message_timeout
            # any state but "waiting"/"inactive": reset() recovers a hold or an error state
            if fresh and (status.get("state") in ("running", "holding", "error", "estop")
                          or not want_status):
                return
            time.sleep(0.01)
        missing = (f"joint states on {self.hw.topics.joint_states}" if not fresh else
                   f"a running controller on {self.hw.topics.status} (last state: "
                   f"{status.get('state', 'none received')})")
        raise RuntimeError(f"no {missing} within {timeout} s (ROS_DOMAIN_ID {self.hw.domain_id}); "
                           "is the arm driver / twin / controller running on this domain? Check "
                           "with `ros2 topic hz`, or set hardware.controller=external for a "
                           "controller without robo_rl's status topic")

    def _measure(self) -> dict[str, str]:
        """Write the newest measurements into the task's model; -> the controller status."""
        import mujoco

        sample, received, wrench, status = self.link.latest()
        age = time.monotonic() - received
        if sample is None or age > self.hw.message_timeout:
            raise RuntimeError(f"joint states stale ({age:.2f} s old; message_timeout "
                               f"{self.hw.message_timeout} s): the arm driver stopped publishing "
                               f"{self.hw.topics.joint_states}")
        task = self._env
        m, d, n = task.model, task.data, task.n_arm
        d.qpos[:n] = sample.q
        d.qvel[:n] = sample.qd
        mujoco.mj_forward(m, d)
        task.measured_wrench = wrench
        if task.tank is not None and status.get("tank_energy"):
            task.tank.reset(float(status["tank_energy"]))
        return status

    def _ledger(self, before: dict[str, str], after: dict[str, str]) -> StatusLedger:
        if not after:
            return StatusLedger()

        def delta(key: str) -> float:
            end = float(after.get(key) or 0.0)
            start = float(before.get(key) or 0.0) if before else 0.0
            return end - start if end >= start else end  # the ledger restarts on recover

        reason = after.get("hold_reason", "")
        trip = after.get("state") in ("holding", "estop", "error") and (
            reason not in TRIP_FREE_REASONS)
        return StatusLedger(delta("energy_injected"), delta("energy_returned"),
                            delta("energy_dissipated"), None, trip, reason or None)

    # ------------------------------------------------------------------ episode
    def _tripped(self, status: dict[str, str]) -> bool:
        """The controller holds for a reason only recover clears (trip, e-stop, error)."""
        if self.hw.controller != "robo_rl" or not status:
            return False
        state = status.get("state")
        return state in ("estop", "error") or (
            state == "holding" and status.get("hold_reason", "") not in TRIP_FREE_REASONS)

    def _restart_controller(self) -> None:
        status = self.link.latest()[3]
        if status.get("state") == "estop":  # an operator's stop is never cleared by software
            raise RuntimeError("the controller is e-stopped: check the arm, then call its "
                               f"`recover` service ({self.hw.topics.recover}) yourself")
        if self.hw.controller != "robo_rl" or not status:
            return
        # every episode starts from a restarted law, as a simulated task's reset does: the
        # reference at the measured pose, the tank at its initial energy (a drained tank
        # would otherwise keep the arm from moving), trips and errors cleared (logged)
        if self._tripped(status):
            log.warning("controller %s (%s): calling recover before the next episode",
                        status.get("state"), status.get("hold_reason"))
        for _ in range(RECOVER_ATTEMPTS):  # fails while joint states are a moment late
            ok, message = self.link.call(self.link.recover_client, self.hw.reset_timeout)
            if ok:
                break
            time.sleep(STATUS_WAIT_S)
        if not ok:
            raise RuntimeError(f"the controller is {status.get('state')} "
                               f"({status.get('hold_reason')}) and recover failed: {message}")
        time.sleep(STATUS_WAIT_S)

    def _move_to(self, goal_pos: np.ndarray, quat) -> None:
        """Stream the equilibrium along a straight line to goal_pos at reset_speed, then wait
        until the TCP is within reset_tolerance and slower than SETTLED_SPEED."""
        task, hw = self._env, self.hw
        self._measure()
        start = task.tcp_pos
        distance = float(np.linalg.norm(goal_pos - start))
        duration = distance / hw.reset_speed
        t0 = time.monotonic()
        deadline = t0 + duration + hw.reset_timeout
        settled_since = None
        while True:
            now = time.monotonic()
            s = 1.0 if duration <= 0 else min((now - t0) / duration, 1.0)
            self.link.command(start + s * (goal_pos - start), quat)
            self._measure()
            error = float(np.linalg.norm(task.tcp_pos - goal_pos))
            speed = float(np.linalg.norm(task._arm_state(False).ee_velocity()[:3]))
            if s >= 1.0 and error <= hw.reset_tolerance and speed <= SETTLED_SPEED:
                settled_since = settled_since or now
                if now - settled_since >= hw.settle_time:
                    return
            else:
                settled_since = None
            status = self.link.latest()[3]
            if self._tripped(status):
                raise _MoveInterrupted(f"{status.get('state')}: {status.get('hold_reason')}")
            if now > deadline:
                raise RuntimeError(
                    f"reset: the arm did not reach the start pose {np.round(goal_pos, 3).tolist()} "
                    f"within {hw.reset_timeout} s after the move (off by {error:.3f} m, moving "
                    f"{speed:.3f} m/s; controller {status.get('state', 'unknown')}"
                    f"{': ' + status['hold_reason'] if status.get('hold_reason') else ''})")
            time.sleep(1.0 / RESET_STREAM_HZ)

    def reset(self, seed: int | None) -> dict:
        import mujoco

        task = self._env
        if seed is not None:
            task._np_random, _ = gym.utils.seeding.np_random(seed)
        mujoco.mj_resetData(task.model, task.data)
        start_pos = np.asarray(task._sample_episode(task.np_random), dtype=np.float64)  # goal, start: the task's RNG
        fixtures = (task.data.mocap_pos.copy(), task.data.mocap_quat.copy())   # where _sample_episode put them
        last_interruption = ""
        for attempt in range(RECOVER_ATTEMPTS):
            self._restart_controller()
            try:
                # Straight up to the start height first, then across: a peg still in last episode's
                # hole leaves it vertically, and the fixtures move only once the tool is above them
                # (the start poses of the arm tasks are above their fixtures).
                self._measure()
                lift = np.array([*task.tcp_pos[:2], start_pos[2]])
                if task.tcp_pos[2] < start_pos[2] - self.hw.reset_tolerance:
                    self._move_to(lift, task.home_quat)
                self.link.publish_scene(*fixtures)
                self._move_to(start_pos, task.home_quat)
                break
            except _MoveInterrupted as why:
                last_interruption = str(why)
                log.warning("reset move interrupted (%s); recovering and moving again", why)
        else:
            raise RuntimeError(f"reset: the controller stopped the move to the start pose "
                               f"{RECOVER_ATTEMPTS} times; last: {last_interruption}")
        self._measure()
        obs, info = task.begin_episode()
        # the controller's target is the start pose; the episode's set-point starts at the
        # measured pose, as in simulation
        self.link.command(task.target_pos, task.target_quat)
        self._obs = self._convert(obs)
        self._status_at_step = self.link.latest()[3]
        self.pacer.restart()
        self.pacer.wait()   # the grid starts now: the first step ends one period after the reset
        return info

    def step(self, action: np.ndarray) -> tuple[float, bool, bool, dict]:
        task = self._env
        action, obs_before = task.apply_action(action)
        self.link.command(task.target_pos, task.target_quat, task.stiffness)
        # the policy period ends on a fixed grid: a slow learner shifts nothing but this step
        late = self.pacer.wait()
        status = self._measure()
        ledger = self._ledger(self._status_at_step, status)
        self._status_at_step = status
        obs, reward, terminated, truncated, info = task.finish_step(obs_before, action, ledger)
        info["late_s"] = late
        info["controller_state"] = status.get("state", "")
        self._obs = self._convert(obs)
        return float(reward), bool(terminated), bool(truncated), info

    def render(self, height: int, width: int) -> np.ndarray:
        """The newest camera frame (resized), else the arm model's render at the measured
        joints (no contact objects moved: a picture of the arm, not of the scene)."""
        image = self.link.image
        if image is not None:
            import cv2

            return np.asarray(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))
        return np.asarray(self._env.render_frame(height, width), np.uint8)

    def get_state(self) -> dict:
        raise NotImplementedError("a ROS 2 arm cannot be snapshotted (get_state): only "
                                  "simulated tasks restore full simulator states")

    def set_state(self, state: dict) -> None:
        raise NotImplementedError("a ROS 2 arm cannot be restored to a snapshot (set_state)")

    def estop(self) -> tuple[bool, str]:
        return self.link.call(self.link.estop_client, self.hw.reset_timeout)

    def close(self) -> None:
        link = getattr(self, "link", None)
        if link is not None:
            link.close()
            self.link = None
        if self.processes is not None:
            self.processes.stop()
            self.processes = None
        super().close()


def make_robot_env(cfg: EnvConfig, hw: RobotEnvConfig, seed: int):
    """RoboEnv over a ROS 2 arm: the same wrapper (action rescaling, episode statistics) as
    every simulated env, with gymnasium's nondeterministic flag set (real time)."""
    from robo_rl.envs.core import RoboEnv

    backend = RosArmBackend(cfg.name, cfg, seed, hw)
    try:
        env = RoboEnv(backend, cfg, seed)
        task = cfg.name.removeprefix(PREFIX)
        env.spec = gym.envs.registration.EnvSpec(id=f"robo_rl/{task}_{hw.kind}-v0",
                                                 nondeterministic=True)
    except BaseException:
        backend.close()
        raise
    return env

