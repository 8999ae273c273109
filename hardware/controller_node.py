"""robo_rl's Cartesian impedance controller as a ROS 2 managed (lifecycle) node.

    ros2 run robo_rl controller_node --ros-args -p autostart:=true
    ros2 lifecycle set /cartesian_impedance_controller configure   # then: activate

Each tick of a 1 / rate_hz timer runs robo_rl.controllers.ControlTick -- the very object the
MuJoCo tasks step 50 times per policy step: per-tick safety trips on the measured pose, twist
and wrist wrench, the hold at the measured pose, the impedance law, the energy tank on the
applied torque. The state it acts on comes from the newest sensor_msgs/JointState through the
arm model (hardware/arm_model.py); the torque goes out as std_msgs/Float64MultiArray to the
arm's effort controller.

Inputs (names: hardware/config.py TopicNames, parameters `topics.*`):
  joint states (JointState), equilibrium pose (PoseStamped in base_frame), stiffness
  (Float64MultiArray, 6), wrist wrench (WrenchStamped). A bad message (missing joints, NaN,
  another frame, an out-of-order stamp, wrong sizes) is dropped with a logged reason and
  counted in the status; the last good value stays in force.
Watchdog:
  no equilibrium pose for equilibrium_timeout -> "holding: equilibrium stale": the target stays
    the last accepted (safe: clipped into the workspace) pose until a fresh pose arrives;
  no joint state for joint_state_timeout -> the error state: zero torque every tick until the
    `recover` service is called with fresh joint states again.
Services (std_srvs/Trigger): `estop` holds at the measured pose (spring released, damping on)
  and ignores commands until `recover`; `recover` restarts the law at the measured pose.
Status (diagnostic_msgs/DiagnosticArray at status_rate_hz): state, hold reason, tank energy,
  energy ledger, loop rate and period jitter, tick cost, joint-state age at the tick, rejections.
Parameters: the node's (ControllerNodeConfig) and the law's (impedance.*, safety.*, tank.*).
  A set is validated by the dataclasses' own checks and rejected with their reason (old values
  kept). Gains and limits apply at once: the law restarts from the measured pose toward the
  same target, the tank keeps its level; while holding they apply at `recover`. Structural
  ones (rate, model, joints, topics) only while unconfigured.
"""

from __future__ import annotations

import math
import time
from collections import deque

import numpy as np

from robo_rl.controllers import (CartesianImpedanceController, ControlTick, EnergyTank,
                                 PassivityFilter, SafetyLimits)
from robo_rl.controllers.quaternion import quat_normalize

from .arm_model import ArmModel
from .params import CONTROLLER_GROUPS, STRUCTURAL, build, defaults
from .ros import (JointStateReader, PoseReader, Rejected, command_qos, declare_parameters,
                  import_rclpy, read_stiffness, read_wrench, run_node, sensor_qos)

import_rclpy()
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue  # noqa: E402
from geometry_msgs.msg import PoseStamped, WrenchStamped  # noqa: E402
from rcl_interfaces.msg import SetParametersResult  # noqa: E402
from rclpy.lifecycle import Node as LifecycleNode  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

NODE_NAME = "cartesian_impedance_controller"
# measured dt is clamped to this band around 1 / rate_hz (a stalled process must not make
# the torque-rate limit allow a 100x step, a doubled callback must not stall the filter)
DT_CLAMP = (0.25, 4.0)
STATS_WINDOW = 1000           # ticks (1 s at 1 kHz) of period / cost samples behind the status percentiles
LOG_THROTTLE_S = 1.0          # at most one log line per second per kind of rejection
STATUS_NAME = "robo_rl impedance controller"


def _guarded(kind: str):
    """An input callback that raises (a bug, an odd message) logs and counts a rejection
    instead of taking the node down: the control loop must outlive any one message."""
    def wrap(callback):
        def guarded(self, msg):
            try:
                callback(self, msg)
            except Exception as error:  # noqa: BLE001 - see the docstring
                self._reject(kind, f"internal error handling the message: {error!r}")
        guarded.__name__ = callback.__name__
        guarded.__doc__ = callback.__doc__
        return guarded
    return wrap


class ControllerNode(LifecycleNode):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        self._values = declare_parameters(self, defaults(CONTROLLER_GROUPS))
        self._settings = build(CONTROLLER_GROUPS, self._values)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._configured = False
        self._control_timer = None
        self._autostart_timer = None
        self.lifecycle = "unconfigured"
        if self._settings[""].autostart:
            self._autostart_timer = self.create_timer(0.01, self._autostart)

    # ------------------------------------------------------------------ lifecycle
    def _autostart(self) -> None:
        self.destroy_timer(self._autostart_timer)
        self._autostart_timer = None
        self.trigger_configure()
        self.trigger_activate()

    def on_configure(self, state) -> TransitionCallbackReturn:
        s = self._settings
        node, topics = s[""], s["topics"]
        if not node.rate_hz > 0 or not node.status_rate_hz > 0:
            self.get_logger().error(f"rate_hz={node.rate_hz} and status_rate_hz="
                                    f"{node.status_rate_hz} must be > 0")
            return TransitionCallbackReturn.FAILURE
        try:
            self.model = ArmModel(node.task)
        except ValueError as error:
            self.get_logger().error(f"cannot build the arm model: {error}")
            return TransitionCallbackReturn.FAILURE
        if len(node.joint_names) != self.model.n_joints:
            self.get_logger().error(f"joint_names has {len(node.joint_names)} names for the "
                                    f"{self.model.n_joints}-joint arm model of task {node.task}")
            return TransitionCallbackReturn.FAILURE
        self.dt = 1.0 / node.rate_hz
        try:
            self.tick = self._build_tick(self._settings)
        except ValueError as error:
            self.get_logger().error(f"cannot build the law from the parameters: {error}")
            return TransitionCallbackReturn.FAILURE
        self.joints = JointStateReader(node.joint_names)
        self.poses = PoseReader(node.base_frame)
        self.sample = None               # newest JointSample
        self.sample_time = 0.0           # its receive time (monotonic s)
        self.wrench: list[float] | None = None
        self.fault: str | None = None    # error state reason (zero torque until recover)
        self.estopped = False
        self.initialised = False
        self.gains_pending = False       # a parameter set waiting for a fresh state to apply
        self.equilibrium_time: float | None = None
        self.equilibrium_stale_since: float | None = None
        self.rejections: dict[str, int] = {}
        self.last_rejection = ""
        self.ticks = 0
        self.last_tick: float | None = None
        self.periods: deque[float] = deque(maxlen=STATS_WINDOW)
        self.costs: deque[float] = deque(maxlen=STATS_WINDOW)
        self.ages: deque[float] = deque(maxlen=STATS_WINDOW)
        self.hold_since: float | None = None
        self.fault_since: float | None = None
        self.torque = np.zeros(self.model.n_joints)
        self._zero = Float64MultiArray(data=[0.0] * self.model.n_joints)
        self._command = Float64MultiArray()

        self.effort_pub = self.create_publisher(Float64MultiArray, topics.effort_commands,
                                                command_qos())
        self.status_pub = self.create_publisher(DiagnosticArray, topics.status, command_qos(10))
        self._io_subscriptions = [
            self.create_subscription(JointState, topics.joint_states, self._on_joint_state,
                                     sensor_qos()),
            self.create_subscription(PoseStamped, topics.equilibrium_pose, self._on_pose,
                                     command_qos()),
            self.create_subscription(Float64MultiArray, topics.stiffness, self._on_stiffness,
                                     command_qos()),
            self.create_subscription(WrenchStamped, topics.wrench, self._on_wrench, sensor_qos()),
        ]
        self._io_services = [self.create_service(Trigger, topics.estop, self._on_estop),
                          self.create_service(Trigger, topics.recover, self._on_recover)]
        self._status_timer = self.create_timer(1.0 / node.status_rate_hz, self._publish_status)
        self._configured = True
        self.lifecycle = "inactive"
        self.get_logger().info(f"configured: arm/{node.task} model, {node.rate_hz:g} Hz, "
                               f"energy tank {'on' if node.energy_tank else 'off'}")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        self.initialised = False  # the law starts at the measured pose of the next fresh state
        self.last_tick = None
        self._control_timer = self.create_timer(self.dt, self._control)
        self.lifecycle = "active"
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._stop_control()
        self.lifecycle = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._teardown()
        self.lifecycle = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self._teardown()
        self.lifecycle = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def _stop_control(self) -> None:
        if self._control_timer is not None:
            self.destroy_timer(self._control_timer)
            self._control_timer = None
            if self.context.ok():  # Ctrl-C shuts the context down before close() runs
                self.effort_pub.publish(self._zero)  # leave the arm to its gravity compensation

    def _teardown(self) -> None:
        if not self._configured:
            return
        self._stop_control()
        self.destroy_timer(self._status_timer)
        for sub in self._io_subscriptions:
            self.destroy_subscription(sub)
        for srv in self._io_services:
            self.destroy_service(srv)
        self.destroy_publisher(self.effort_pub)
        self.destroy_publisher(self.status_pub)
        self._configured = False

    def close(self) -> None:
        if self._configured:
            self._stop_control()

    # ------------------------------------------------------------------ the law
    def _build_tick(self, settings) -> ControlTick:
        law = CartesianImpedanceController(settings["impedance"], n_joints=self.model.n_joints)
        if settings[""].energy_tank:
            law = PassivityFilter(law, EnergyTank(settings["tank"]))
        return ControlTick(law, SafetyLimits(settings["safety"]))

    def _restart(self, settings, state, keep_target: bool) -> ControlTick:
        """A new law from `settings`, started at the measured pose. keep_target (a gain change):
        continue toward the current target with the tank at the level the running one has, so
        parameter sets never refill it; else (activation, recover: an operator's restart, as a
        simulated task's episode reset) hold the pose with the tank at initial_energy. Raises
        ValueError before anything changes."""
        old = getattr(self, "tick", None)
        level = (old.tank.energy if keep_target and old is not None and old.tank is not None
                 else None)
        tick = self._build_tick(settings)
        if level is not None and tick.tank is not None:
            level = min(level, settings["tank"].max_energy)  # a lower cap discards the excess
        tick.reset(state, safe_target=np.concatenate([state.ee_pos, state.ee_quat]),
                   tank_energy=level if tick.tank is not None else None)
        if keep_target and old is not None:
            target = np.concatenate([old.target_pos, old.target_quat])
            tick.safety.reset(target)
            tick.set_target(target[:3], tuple(target[3:]))
        return tick

    def _restart_at(self, state) -> None:
        """The law restarts at the measured pose: reference := pose, hold cleared."""
        self.tick = self._restart(self._settings, state, keep_target=False)
        self.initialised = True
        self.gains_pending = False
        self.hold_since = None

    def _control(self) -> None:
        try:
            self._control_tick()
        except Exception as error:  # noqa: BLE001 - a failing tick must leave zero torque
            self._enter_fault(f"internal error in the control tick: {error!r}")
            self.get_logger().error("control tick failed", throttle_duration_sec=LOG_THROTTLE_S)
            self.effort_pub.publish(self._zero)

    def _control_tick(self) -> None:
        start = time.perf_counter()
        now = time.monotonic()
        if self.last_tick is not None:
            self.periods.append(now - self.last_tick)
        dt = self.dt if self.last_tick is None else min(max(now - self.last_tick,
                                                            DT_CLAMP[0] * self.dt),
                                                        DT_CLAMP[1] * self.dt)
        self.last_tick = now
        self.ticks += 1
        if self.fault is not None:
            self.effort_pub.publish(self._zero)
            return
        sample = self.sample
        if sample is None:
            return  # waiting for the first joint state: nothing to command yet
        age = now - self.sample_time
        if age > self._settings[""].joint_state_timeout:
            self._enter_fault(f"joint states stale: none for {age * 1e3:.1f} ms "
                              f"(joint_state_timeout {self._settings[''].joint_state_timeout} s)")
            self.effort_pub.publish(self._zero)
            return
        state = self.model.state(sample.q, sample.qd)
        if not self.initialised:
            self._restart_at(self.model.state(sample.q, sample.qd, copy=True))
        elif self.gains_pending:  # as a live set: same target, the tank keeps its level
            self.tick = self._restart(self._settings, self.model.state(sample.q, sample.qd,
                                                                       copy=True), keep_target=True)
            self.gains_pending = False
        timeout = self._settings[""].equilibrium_timeout
        if (self.equilibrium_time is not None and self.equilibrium_stale_since is None
                and now - self.equilibrium_time > timeout):
            self.equilibrium_stale_since = now
            self.get_logger().warning(f"equilibrium pose stale (none for {timeout} s): holding the "
                                   "last accepted pose")
        was_holding = self.tick.holding
        tau, _ = self.tick.step(state, self.wrench, dt)
        if self.tick.holding and not was_holding:
            self.hold_since = now
            self.get_logger().warning(f"safety hold: {self.tick.hold_reason}")
        self.torque = tau
        self._command.data = tau.tolist()
        self.effort_pub.publish(self._command)
        self.ages.append(age)
        self.costs.append(time.perf_counter() - start)

    def _enter_fault(self, reason: str) -> None:
        if self.fault is None:
            self.fault = reason
            self.fault_since = time.monotonic()
            self.get_logger().error(f"error state: {reason}; zero torque until `recover`")

    # ------------------------------------------------------------------ inputs
    def _reject(self, kind: str, reason: Exception | str) -> None:
        self.rejections[kind] = self.rejections.get(kind, 0) + 1
        self.last_rejection = f"{kind}: {reason}"
        self.get_logger().warning(f"rejected {kind}: {reason}",
                               throttle_duration_sec=LOG_THROTTLE_S)

    @_guarded("joint_states")
    def _on_joint_state(self, msg) -> None:
        try:
            sample = self.joints.read(msg)
        except Rejected as reason:
            self._reject("joint_states", reason)
            return
        self.sample, self.sample_time = sample, time.monotonic()

    @_guarded("wrench")
    def _on_wrench(self, msg) -> None:
        try:
            self.wrench = read_wrench(msg)
        except Rejected as reason:
            self._reject("wrench", reason)

    @_guarded("equilibrium_pose")
    def _on_pose(self, msg) -> None:
        try:
            pos, quat = self.poses.read(msg)
        except Rejected as reason:
            self._reject("equilibrium_pose", reason)
            return
        if not self.initialised or self.fault is not None or self.estopped:
            return  # nothing to command (waiting, error, e-stop): not a bad message
        tick = self.tick
        current = np.concatenate([tick.target_pos, tick.target_quat])
        safe = tick.safety.clip_target(current, np.concatenate([pos, quat]))
        tick.set_target(safe[:3], quat_normalize(safe[3:]))
        self.equilibrium_time = time.monotonic()
        if self.equilibrium_stale_since is not None:
            self.get_logger().info("equilibrium pose stream back: following it again")
            self.equilibrium_stale_since = None

    @_guarded("stiffness")
    def _on_stiffness(self, msg) -> None:
        try:
            stiffness = read_stiffness(msg)
        except Rejected as reason:
            self._reject("stiffness", reason)
            return
        law = self.tick.controller
        law = law.controller if isinstance(law, PassivityFilter) else law
        lo, hi = np.asarray(law.params.stiffness_min), np.asarray(law.params.stiffness_max)
        if np.any(stiffness < lo) or np.any(stiffness > hi):
            self._reject("stiffness", f"{stiffness.tolist()} outside [impedance.stiffness_min, "
                                      f"impedance.stiffness_max] = [{lo.tolist()}, {hi.tolist()}]")
            return
        if self.initialised:
            self.tick.set_target(self.tick.target_pos, self.tick.target_quat, stiffness)

    # ------------------------------------------------------------------ services
    def _fresh_state(self):
        if self.sample is None or (time.monotonic() - self.sample_time
                                   > self._settings[""].joint_state_timeout):
            return None
        return self.model.state(self.sample.q, self.sample.qd, copy=True)

    def _on_estop(self, request, response):
        self.estopped = True
        state = self._fresh_state()
        if state is not None and self.initialised:
            self.tick.hold(state, "e-stop")
            self.hold_since = time.monotonic()
            response.message = "e-stop: holding at the measured pose until `recover`"
        else:
            self._enter_fault("e-stop without fresh joint states")
            response.message = "e-stop: no fresh joint state, zero torque until `recover`"
        self.get_logger().error(response.message)
        response.success = True
        return response

    def _on_recover(self, request, response):
        state = self._fresh_state()
        if self.lifecycle != "active":
            response.success, response.message = False, f"node is {self.lifecycle}, not active"
        elif state is None:
            response.success = False
            response.message = "no fresh joint states: cannot restart the law"
        else:
            try:  # parameters set while holding apply now
                self._restart_at(state)
            except ValueError as error:
                response.success, response.message = False, f"cannot restart the law: {error}"
                return response
            self.fault = self.fault_since = None
            self.estopped = False
            self.equilibrium_stale_since = None
            self.equilibrium_time = None
            response.success, response.message = True, "recovered: holding the measured pose"
            self.get_logger().info(response.message)
        return response

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, parameters) -> SetParametersResult:
        changed = {p.name: p.value for p in parameters}
        structural = [name for name in changed if name in STRUCTURAL or name.startswith("topics.")]
        if structural and self._configured:
            return SetParametersResult(successful=False, reason=(
                f"{structural} take effect at configure: deactivate and clean up the node "
                "first (ros2 lifecycle set ... cleanup), then set them"))
        values = {**self._values, **changed}
        live = self._configured and self.initialised and not self.tick.holding
        state = self._fresh_state() if live else None
        try:
            settings = build(CONTROLLER_GROUPS, values)
            for name in ("equilibrium_timeout", "joint_state_timeout"):
                value = getattr(settings[""], name)
                if not (math.isfinite(value) and value > 0):
                    raise ValueError(f"{name}={value} must be finite and > 0 (seconds)")
            # the whole law is built (tank level included) before anything is committed
            tick = (self._restart(settings, state, keep_target=True) if state is not None
                    else CartesianImpedanceController(settings["impedance"],
                                                      n_joints=len(settings[""].joint_names)))
        except (TypeError, ValueError) as error:
            return SetParametersResult(successful=False, reason=str(error))
        self._values, self._settings = values, settings
        if state is not None:
            self.tick = tick
        elif live:
            self.gains_pending = True  # no fresh state: they apply at the next one
        return SetParametersResult(successful=True)

    # ------------------------------------------------------------------ status
    def status_values(self) -> dict[str, str]:
        now = time.monotonic()
        if self.lifecycle != "active":
            state = self.lifecycle
        elif self.estopped:  # an operator's stop outranks a fault: only they may clear it
            state = "estop"
        elif self.fault is not None:
            state = "error"
        elif self.sample is None or not self.initialised:
            state = "waiting"
        elif self.tick.holding or self.equilibrium_stale_since is not None:
            state = "holding"
        else:
            state = "running"
        hold_reason = (self.fault or (self.tick.hold_reason if self.tick.holding else None)
                       or ("equilibrium stale" if self.equilibrium_stale_since is not None else ""))
        if self.estopped and self.fault is not None:
            hold_reason = f"e-stop; {self.fault}"
        periods = np.asarray(self.periods) if self.periods else np.zeros(1)
        costs = np.asarray(self.costs) if self.costs else np.zeros(1)
        ages = np.asarray(self.ages) if self.ages else np.zeros(1)
        tank = self.tick.tank
        since = {"hold_since": self.hold_since, "fault_since": self.fault_since,
                 "stale_since": self.equilibrium_stale_since,
                 "equilibrium_received": self.equilibrium_time}
        values = {
            "state": state, "hold_reason": hold_reason,
            "tank_energy": f"{tank.energy:.6f}" if tank is not None else "",
            "tank_min_energy": f"{tank.params.min_energy:.6f}" if tank is not None else "",
            "energy_injected": f"{self.tick.energy_injected:.6f}",
            "energy_returned": f"{self.tick.energy_returned:.6f}",
            "energy_dissipated": f"{self.tick.energy_dissipated:.6f}",
            "ticks": str(self.ticks),
            "rate_hz": f"{1.0 / periods.mean():.2f}" if periods.mean() > 0 else "0",
            "period_p50_ms": f"{np.percentile(periods, 50) * 1e3:.4f}",
            "period_p99_ms": f"{np.percentile(periods, 99) * 1e3:.4f}",
            "period_max_ms": f"{periods.max() * 1e3:.4f}",
            "tick_cost_mean_us": f"{costs.mean() * 1e6:.2f}",
            "tick_cost_p99_us": f"{np.percentile(costs, 99) * 1e6:.2f}",
            "joint_state_age_p50_ms": f"{np.percentile(ages, 50) * 1e3:.4f}",
            "joint_state_age_p99_ms": f"{np.percentile(ages, 99) * 1e3:.4f}",
            "rejected": ",".join(f"{k}={v}" for k, v in sorted(self.rejections.items())),
            "last_rejected": self.last_rejection,
            "target": ",".join(f"{v:.6f}" for v in self.tick.target_pos),
            "monotonic_now": f"{now:.6f}",
        }
        for key, t in since.items():
            values[key] = f"{t:.6f}" if t is not None else ""
        return values

    def _publish_status(self) -> None:
        values = self.status_values()
        level = {"running": DiagnosticStatus.OK, "holding": DiagnosticStatus.WARN,
                 "waiting": DiagnosticStatus.WARN}.get(values["state"], DiagnosticStatus.ERROR)
        if values["state"] == "inactive":
            level = DiagnosticStatus.WARN
        status = DiagnosticStatus(level=level, name=STATUS_NAME, hardware_id=NODE_NAME,
                                  message=values["state"] + (f": {values['hold_reason']}"
                                                             if values["hold_reason"] else ""))
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.status_pub.publish(msg)


def main(argv=None) -> int:
    return run_node(ControllerNode, argv)


if __name__ == "__main__":
    raise SystemExit(main())
