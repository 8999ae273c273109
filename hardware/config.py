"""Settings of the ROS 2 side: topic names (what the nodes and the env client agree on) and
each node's own numbers. Plain dataclasses (no rclpy): Hydra's `hardware=` configs and the
nodes' ROS 2 parameters are both built from them, so one default lives in one place.

Topic defaults follow what labs already run: ros2_control's joint_state_broadcaster
(`/joint_states`) and a JointGroupEffortController (`/effort_controller/commands`); the Franka
example Cartesian impedance controller's `equilibrium_pose` (PoseStamped) and a 6-value
stiffness (Float64MultiArray, x y z rx ry rz); a wrist F/T WrenchStamped; a camera Image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ARM_JOINT_NAMES = tuple(f"joint{i}" for i in range(1, 8))
HARDWARE_KINDS = ("twin", "real")
CONTROLLER_KINDS = ("robo_rl", "external")
MAX_DOMAIN_ID = 101   # the ROS_DOMAIN_ID range every DDS vendor supports


@dataclass
class TopicNames:
    joint_states: str = "/joint_states"                         # sensor_msgs/JointState, in
    effort_commands: str = "/effort_controller/commands"        # std_msgs/Float64MultiArray
    equilibrium_pose: str = "/cartesian_impedance_controller/equilibrium_pose"  # PoseStamped
    stiffness: str = "/cartesian_impedance_controller/stiffness"  # Float64MultiArray (6)
    wrench: str = "/ft_sensor/wrench"                           # geometry_msgs/WrenchStamped
    image: str = "/camera/image_raw"                            # sensor_msgs/Image (rgb8)
    status: str = "/cartesian_impedance_controller/status"      # diagnostic_msgs/DiagnosticArray
    # services (std_srvs/Trigger) of robo_rl's controller node and of the twin
    estop: str = "/cartesian_impedance_controller/estop"
    recover: str = "/cartesian_impedance_controller/recover"
    action: str = "/policy/action"                              # Float32MultiArray, policy node
    # geometry_msgs/PoseArray, from the env client at each reset: where the task's fixtures (its
    # MuJoCo mocap bodies, e.g. peg_insert's hole) stand this episode. The twin moves its own; on a
    # real arm they are placed there (or bolted where the task's options fix them).
    scene: str = "/robo_rl/scene"


@dataclass
class ControllerNodeConfig:
    """robo_rl's impedance controller node. The law's own numbers (ImpedanceParams, SafetyParams,
    EnergyTankParams) are ROS 2 parameters too, under `impedance.`, `safety.` and `tank.`."""

    rate_hz: float = 1000.0             # control timer
    task: str = "reach"                 # which arm model (robo_rl.tasks scene + tool) to use
    base_frame: str = "world"           # frame_id the equilibrium pose must carry
    joint_names: tuple[str, ...] = ARM_JOINT_NAMES
    energy_tank: bool = True            # PassivityFilter around the law
    # Watchdog: no equilibrium pose for this long -> hold the last accepted pose (target
    # frozen, hold_reason "equilibrium stale") until a fresh one arrives; no joint state for
    # this long -> zero torque and the error state until `recover` (after fresh states).
    equilibrium_timeout: float = 0.5    # s (the env client streams at 10-20 Hz)
    joint_state_timeout: float = 0.015  # s (15 missed 1 kHz samples)
    status_rate_hz: float = 20.0        # diagnostic_msgs status topic
    autostart: bool = False             # configure + activate at start (twin bring-up)


@dataclass
class TwinConfig:
    """The MuJoCo digital twin: a robo_rl.tasks arm behind a real arm driver's topics."""

    task: str = "reach"
    rate_hz: float = 1000.0             # physics step = 1 / rate_hz, stepped in real time
    joint_names: tuple[str, ...] = ARM_JOINT_NAMES
    image_rate_hz: float = 10.0         # camera topic (0 disables it)
    image_size: int = 84
    camera: str = "front"
    wrench_frame: str = "ft_sensor"
    # seconds one effort command is held over, at most (at least one physics step): when the
    # controller or the twin itself falls behind, the rest of the stall is dropped (the twin's
    # physics time slows) instead of integrated with a stale torque. A real arm's hard
    # real-time loop never holds a torque long; the reach arm's impedance loop goes unstable
    # when a torque is held for 12 ms at 1 or 4 ms physics steps, not at 8 ms
    # (tests/test_ros_config.py); half that margin
    max_command_hold: float = 0.004
    # no effort command for this long -> zero torque (as an arm driver drops a dead client)
    command_timeout: float = 0.1        # s
    seed: int = 0                       # the task's reset (start pose) seed


@dataclass
class RobotEnvConfig:
    """The gymnasium env over ROS 2 (`hardware=twin|real`)."""

    kind: str = "twin"                  # twin: robo_rl brings up twin + controller; real: attach
    topics: TopicNames = field(default_factory=TopicNames)
    joint_names: tuple[str, ...] = ARM_JOINT_NAMES
    base_frame: str = "world"
    domain_id: int = 42                 # ROS_DOMAIN_ID (loopback discovery is always set)
    reset_speed: float = 0.15           # m/s of the equilibrium while moving to a start pose
    reset_tolerance: float = 0.01       # m: the start pose counts as reached within this
    reset_timeout: float = 10.0         # s before reset() gives up with an error
    settle_time: float = 0.3            # s to wait at the start pose before the episode
    message_timeout: float = 2.0        # s without joint states before step() raises
    stream_hz: float = 20.0             # keep-alive re-publishing of the last equilibrium
    startup_timeout: float = 60.0       # s for the nodes to come up (twin: process start)
    controller: str = "robo_rl"         # robo_rl (our node: status, e-stop) | external
    # twin bring-up: the controller node's joint-state watchdog. The twin, the controller and
    # the learner share the CPU (2 cores here: 15-60 ms stalls under training load); a real
    # arm's controller node keeps its own (ControllerNodeConfig.joint_state_timeout, 15 ms)
    twin_joint_state_timeout: float = 0.1
    record: str | None = None           # MCAP path: record the session's topics there

    def __post_init__(self) -> None:
        self.joint_names = tuple(self.joint_names)  # YAML gives a list
        problems = []
        if self.kind not in HARDWARE_KINDS:
            problems.append(f"hardware.kind={self.kind!r} must be one of {HARDWARE_KINDS}")
        if self.controller not in CONTROLLER_KINDS:
            problems.append(f"hardware.controller={self.controller!r} must be one of "
                            f"{CONTROLLER_KINDS}")
        if self.kind == "twin" and self.controller != "robo_rl":
            problems.append("hardware.kind=twin brings up robo_rl's controller node: set "
                            "hardware.controller=robo_rl (external controllers: kind=real)")
        if not (isinstance(self.domain_id, int) and 0 <= self.domain_id <= MAX_DOMAIN_ID):
            problems.append(f"hardware.domain_id={self.domain_id} must be in 0..{MAX_DOMAIN_ID}")
        for name in ("reset_speed", "reset_tolerance", "reset_timeout", "message_timeout",
                     "startup_timeout", "stream_hz", "twin_joint_state_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0 and value < float("inf")):
                problems.append(f"hardware.{name}={value} must be finite and > 0")
        if self.settle_time < 0:
            problems.append(f"hardware.settle_time={self.settle_time} must be >= 0")
        if len(self.joint_names) == 0 or len(set(self.joint_names)) != len(self.joint_names):
            problems.append(f"hardware.joint_names={list(self.joint_names)} must be distinct names")
        if problems:
            raise ValueError("invalid hardware config:\n  - " + "\n  - ".join(problems))
