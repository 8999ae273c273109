"""The ROS 2 side's settings and message checks, without processes: the hardware YAMLs equal the
dataclass, config keys reach the objects they name, parameters round-trip, bad messages are
named, and ControlTick's external hold behaves as the per-tick trip does."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from omegaconf import OmegaConf

from robo_rl.config_schema import ConfigError, check_train_config, compose_train_config
from robo_rl.controllers import (CartesianImpedanceController, ControlTick, ImpedanceParams,
                                 SafetyLimits, SafetyParams)
from robo_rl.hardware.config import RobotEnvConfig
from robo_rl.hardware.launcher import controller_parameters, twin_parameters
from robo_rl.hardware.params import CONTROLLER_GROUPS, TWIN_GROUPS, build, defaults
from robo_rl.loops.common import hardware_config


@pytest.mark.parametrize("kind", ["twin", "real"])
def test_hardware_yaml_equals_the_dataclass(kind):
    cfg = compose_train_config(["task=arm/reach", f"hardware={kind}"])
    assert OmegaConf.to_object(cfg.hardware) == RobotEnvConfig(kind=kind)


def test_no_hardware_by_default():
    assert compose_train_config(["task=arm/reach"]).hardware is None


def test_hardware_keys_reach_the_config_object_and_bad_values_are_named():
    cfg = compose_train_config(["task=arm/reach", "hardware=twin", "hardware.reset_speed=0.3",
                                "hardware.topics.joint_states=/franka/joint_states"])
    hw = hardware_config(cfg)
    assert hw.reset_speed == 0.3 and hw.topics.joint_states == "/franka/joint_states"
    bad = compose_train_config(["task=arm/reach", "hardware=twin", "hardware.domain_id=500"])
    with pytest.raises(ConfigError, match="hardware.domain_id=500"):
        check_train_config(bad)
    external_twin = compose_train_config(["task=arm/reach", "hardware=twin",
                                          "hardware.controller=external"])
    with pytest.raises(ConfigError, match="kind=twin brings up robo_rl's controller"):
        check_train_config(external_twin)


def test_hardware_needs_an_arm_task():
    from robo_rl.envs import make_env

    with pytest.raises(ValueError, match="use an arm/ task"):
        make_env({"name": "dmc/cartpole_swingup"}, hardware=RobotEnvConfig())


def test_parameters_round_trip_and_name_bad_values():
    built = build(CONTROLLER_GROUPS, defaults(CONTROLLER_GROUPS))
    for prefix, cls in CONTROLLER_GROUPS.items():
        assert built[prefix.rstrip(".")] == cls()
    assert build(TWIN_GROUPS, defaults(TWIN_GROUPS))[""] == TWIN_GROUPS[""]()
    params = defaults(CONTROLLER_GROUPS)
    # optional tuples are empty arrays, scalar-or-tuple fields one-element arrays
    assert params["impedance.nullspace_posture"] == []
    assert params["impedance.max_torque_rate"] == [1000.0]
    params["safety.workspace_low"] = [0.9, 0.0, 0.0]  # above workspace_high in x
    with pytest.raises(ValueError, match="workspace_low"):
        build(CONTROLLER_GROUPS, params)


def test_bring_up_gives_the_controller_the_tasks_law():
    """The controller node runs the simulated task's impedance, tank and safety settings."""
    from robo_rl.tasks import make_task

    task = make_task("reach", energy_tank=True,
                     impedance=ImpedanceParams(translational_stiffness=1234.0))
    params = controller_parameters("reach", task, RobotEnvConfig())
    assert params["impedance.translational_stiffness"] == 1234.0
    assert params["energy_tank"] is True and params["autostart"] is True
    assert params["safety.workspace_low"] == list(task.config.workspace_low)
    assert params["safety.max_force"] == task.config.max_force
    assert params["joint_state_timeout"] == RobotEnvConfig().twin_joint_state_timeout
    built = build(CONTROLLER_GROUPS, params)
    assert built["impedance"] == task.config.impedance and built["safety"] == task.safety.params
    assert twin_parameters("reach", RobotEnvConfig())["image_rate_hz"] == 0.0


def test_control_tick_external_hold_matches_the_trip_path():
    law = CartesianImpedanceController(ImpedanceParams())
    tick = ControlTick(law, SafetyLimits(SafetyParams()))
    from robo_rl.controllers import ArmState

    state = ArmState(np.zeros(7), np.zeros(7), np.array([0.5, 0.0, 0.3]),
                     np.array([0.0, 1.0, 0.0, 0.0]), np.vstack([np.eye(6), np.zeros((1, 6))]).T)
    tick.reset(state)
    tick.set_target([0.52, 0.0, 0.3], (0.0, 1.0, 0.0, 0.0))
    moved = state
    moved.ee_pos = np.array([0.51, 0.0, 0.3])
    tick.hold(moved, "e-stop")
    assert tick.holding and tick.hold_reason == "e-stop"
    np.testing.assert_allclose(tick.target_pos, [0.51, 0.0, 0.3])
    tick.set_target([0.7, 0.0, 0.3], (0.0, 1.0, 0.0, 0.0))      # ignored while holding
    np.testing.assert_allclose(tick.target_pos, [0.51, 0.0, 0.3])
    tau, info = tick.step(moved, None, 0.001)
    assert np.allclose(info["force"][:3], 0.0, atol=1e-9)       # spring released at the pose
    tick.release()
    tick.set_target([0.52, 0.0, 0.3], (0.0, 1.0, 0.0, 0.0))
    assert not tick.holding and tick.target_pos[0] == 0.52


rclpy = pytest.importorskip("rclpy")


def test_joint_state_reader_matches_names_and_rejects_bad_samples():
    from sensor_msgs.msg import JointState

    from robo_rl.hardware.ros import JointStateReader, Rejected, set_stamp

    reader = JointStateReader(["a", "b"])
    msg = JointState(name=["b", "gripper", "a"], position=[2.0, 9.0, 1.0],
                     velocity=[0.2, 0.0, 0.1])
    set_stamp(msg.header, 10)
    sample = reader.read(msg)
    np.testing.assert_array_equal(sample.q, [1.0, 2.0])          # reordered, gripper ignored
    np.testing.assert_array_equal(sample.qd, [0.1, 0.2])
    cases = {
        "lacks joints": JointState(name=["a"], position=[1.0], velocity=[0.0]),
        "positions": JointState(name=["a", "b"], position=[1.0], velocity=[0.0, 0.0]),
        "not finite": JointState(name=["a", "b"], position=[math.nan, 0.0], velocity=[0.0, 0.0]),
    }
    for reason, bad in cases.items():
        set_stamp(bad.header, 20)
        with pytest.raises(Rejected, match=reason):
            reader.read(bad)
    old = JointState(name=["a", "b"], position=[0.0, 0.0], velocity=[0.0, 0.0])
    set_stamp(old.header, 10)
    with pytest.raises(Rejected, match="not newer"):
        reader.read(old)


def test_pose_and_stiffness_checks():
    from geometry_msgs.msg import PoseStamped
    from std_msgs.msg import Float64MultiArray

    from robo_rl.hardware.ros import PoseReader, Rejected, pose_message, read_stiffness

    reader = PoseReader("world")
    pos, quat = reader.read(pose_message(PoseStamped(), "world", 5, [0.5, 0, 0.2], [2, 0, 0, 0]))
    assert quat == (1.0, 0.0, 0.0, 0.0)  # normalized
    with pytest.raises(Rejected, match="frame_id 'base_link'"):
        reader.read(pose_message(PoseStamped(), "base_link", 6, [0.5, 0, 0.2], [1, 0, 0, 0]))
    with pytest.raises(Rejected, match="older"):
        reader.read(pose_message(PoseStamped(), "world", 4, [0.5, 0, 0.2], [1, 0, 0, 0]))
    with pytest.raises(Rejected, match="6 finite"):
        read_stiffness(Float64MultiArray(data=[1.0] * 5))


def test_config_dataclasses_have_ros_parameter_forms():
    for groups in (CONTROLLER_GROUPS, TWIN_GROUPS):
        for prefix, cls in groups.items():
            names = {f.name for f in dataclasses.fields(cls)}
            assert {k[len(prefix):] for k in defaults(groups) if k.startswith(prefix)
                    and "." not in k[len(prefix):]} >= names


def _reach_with_held_torque(hold_steps: int) -> tuple[str, float]:
    """Scripted reach on the twin's 1 kHz plant with the law run every hold_steps physics steps
    (its torque held in between, the law's dt clamped as the node's DT_CLAMP does) -> (hold
    reason or "", final goal distance)."""
    import mujoco

    from robo_rl.hardware.controller_node import DT_CLAMP
    from robo_rl.tasks import make_task

    task = make_task("reach", energy_tank=True, physics_dt=1e-3, control_hz=10)
    task.reset(seed=0)
    m, d, loop = task.model, task.data, task.control
    for _ in range(40):
        task.apply_action(task.scripted_action())
        loop.set_target(task.target_pos, task.target_quat, task.stiffness)
        for tick in range(task.ticks_per_step):
            mujoco.mj_step1(m, d)
            if tick % hold_steps == 0:
                tau, _ = loop.step(task._arm_state(False), task._tick_wrench(),
                                   min(hold_steps, DT_CLAMP[1]) * 1e-3)
                task._ctrl_arm[:] = tau
            mujoco.mj_step2(m, d)
        if loop.holding:
            return loop.hold_reason, float(np.linalg.norm(task.tcp_pos - task.goal))
    return "", float(np.linalg.norm(task.tcp_pos - task.goal))


def test_twin_holds_a_command_only_as_long_as_the_reach_loop_stays_stable():
    """The twin's max_command_hold: a torque held that long still reaches the goal with
    no trip; held 12 ms (a starved 2-core host) the loop trips a speed limit, the failure the
    cap keeps out of the twin (a real arm's 1 kHz loop never holds a torque that long)."""
    from robo_rl.hardware.config import TwinConfig

    reason, distance = _reach_with_held_torque(round(TwinConfig().max_command_hold / 1e-3))
    assert reason == "" and distance < 0.01, (reason, distance)
    reason, _ = _reach_with_held_torque(12)
    assert "speed" in reason, reason
