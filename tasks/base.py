"""Shared machinery of the MuJoCo arm tasks: model loading, the controller tick loop,
observations, rewards through robo_rl.reward, and exact simulator snapshots.

One policy step (10 Hz by default, SERL style):
  1. action in [-1, 1]^A -> end-effector set-point delta (pos_action_scale metres per unit),
     optional rotation / stiffness / gripper components;
  2. SafetyLimits clips the new set-point into the task's workspace box;
  3. the Cartesian impedance controller (robo_rl.controllers, the same object the ROS 2 node
     runs) ticks at the physics rate: per tick mj_step1 (kinematics, Jacobian, bias forces of
     the current state), controller torque, mj_step2 (integrate). Splitting mj_step this way
     gives the controller the state of the tick it acts on, as on the real robot.
     Before the controller, every tick, SafetyLimits.check sees the measured TCP pose, the
     twist J qd and the wrist F/T wrench (tool weight removed, rotated to the world frame, which
     leaves the norms the check uses unchanged; low-pass filtered norms; the sensor values are
     the last mj_step2's, one tick old). A trip latches a hold:
     controller.hold_at(state) puts the reference on the measured pose (spring force zero at
     once, damping stays), the hold pose becomes the target for the rest of the episode, the
     step reports info["safety_hold"] = True and info["hold_reason"], and the episode ends
     truncated (not terminated) at the end of that step; reset() clears the hold.
  4. one mj_forward refreshes positions/sensors for the observation and the reward.

Gravity: every arm and tool body has gravcomp="1", so MuJoCo applies the gravity torques as
passive forces (qfrc_gravcomp), like the real arm's internal gravity compensation. The
controller's feed-forward is then only the Coriolis/centrifugal part of the bias forces:
coriolis = qfrc_bias - qfrc_gravcomp on the arm's DoFs (qfrc_bias = C(q, qd) qd + g(q), and with
full compensation qfrc_gravcomp = g(q) for the arm).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robo_rl.config_utils import check_keys
from robo_rl.envs.rendering import configure_mujoco_gl, ensure_offscreen_buffer, renderer_errors

# Headless rendering backend (egl, else osmesa), chosen as robo_rl.envs does; it must be set
# before mujoco is first imported.
configure_mujoco_gl()
import mujoco  # noqa: E402

from robo_rl.controllers import (ArmState, CartesianImpedanceController,  # noqa: E402
                                 ControlTick, EnergyTank, EnergyTankParams, ImpedanceParams,
                                 PassivityFilter, SafetyLimits, SafetyParams)
from robo_rl.controllers.quaternion import (quat_error, quat_multiply,  # noqa: E402
                                            quat_normalize, rotvec_to_quat)
from robo_rl.reward import DistanceReward, EnergyCost, RewardFn, SumReward  # noqa: E402

ASSETS = Path(__file__).resolve().parent / "assets"
ARM_JOINTS = tuple(f"joint{i}" for i in range(1, 8))
# Franka "ready" pose: elbow up, flange pointing down; IK for reset poses starts here.
HOME_QPOS = (0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4)
OBS_TYPES = ("state", "pixels", "pixels_state")
REWARD_TYPES = ("dense", "sparse")
CAMERAS = ("front", "wrist")


@dataclass
class ArmTaskConfig:
    """Settings common to all arm tasks; each task subclasses it with its own defaults."""

    control_hz: float = 10.0            # policy rate (SERL: 10 Hz)
    physics_dt: float = 0.002           # physics step = controller tick (500 Hz)
    episode_steps: int = 100            # policy steps before truncation
    pos_action_scale: float = 0.02      # metres of set-point motion per policy step at |a| = 1
    rot_action_scale: float = 0.1       # radians per policy step at |a| = 1 (rotation_action)
    rotation_action: bool = False       # adds 3 action dims: set-point rotation (world axes)
    gripper_action: bool = False        # adds 1 action dim: -1 closed .. +1 open (gripper tools)
    variable_impedance: bool = False    # adds 1 action dim: translational stiffness
    stiffness_range: tuple[float, float] = (300.0, 2000.0)  # N/m, mapped from [-1, 1]
    energy_tank: bool = False           # PassivityFilter (energy tank) around the controller
    reward_type: str = "dense"          # "dense" (-distance) or "sparse" (1 on success)
    success_threshold: float = 0.01     # goal distance (m) that counts as success
    terminate_on_success: bool = True   # end the episode (terminated=True) on success
    energy_penalty: float = 0.0         # >0 also subtracts energy_cost * this from the reward
    camera: str = "front"               # "front" or "wrist" for pixel observations
    image_size: int = 84                # square renders, pixels
    force_obs_scale: float = 10.0       # N per observation unit (F/T force)
    torque_obs_scale: float = 1.0       # N m per observation unit (F/T torque)
    goal_obs_scale: float = 1.0         # m per observation unit of the task's goal-relative vectors
    workspace_low: tuple[float, float, float] = (0.3, -0.25, 0.02)   # TCP box, world, metres
    workspace_high: tuple[float, float, float] = (0.7, 0.25, 0.35)
    ik_iterations: int = 100            # damped least squares iterations at reset
    ik_damping: float = 1e-4            # lambda^2 of the damped pseudo-inverse
    impedance: ImpedanceParams = field(default_factory=ImpedanceParams)
    tank: EnergyTankParams = field(default_factory=EnergyTankParams)
    safety: SafetyParams | None = None  # None: workspace box + per-step limits from above
    # Per-tick safety trips (used when safety is None): a measured TCP speed or wrist F/T
    # wrench (tool weight removed) above these latches a hold for the rest of the episode.
    # Scripted policies peak at 0.35 m/s, 0.17 rad/s, 29 N / 2.6 N m filtered-free contact
    # (contact_maze) and a one-tick 190 N / 9 N m impact spike (peg_insert bottoming out).
    max_linear_speed: float = 1.0       # m/s, TCP
    max_angular_speed: float = 2.0      # rad/s, TCP
    max_force: float = 100.0            # N, wrist force norm, after force_filter
    max_torque: float = 20.0            # N m, wrist torque norm (about the sensor), filtered
    force_filter: float = 0.1           # per-tick low-pass gain on the F/T norms (~20 ms)


class ArmTask(gym.Env):
    """gymnasium env of one arm task. Subclasses set SCENE, TOOL, Config and implement
    _sample_episode and scripted_action; the goal hooks default to a point goal `self.goal` for
    the TCP (override _goal_distance/_task_obs/_task_state for other goals)."""

    metadata = {"render_modes": ["rgb_array"]}
    SCENE: str = ""
    TOOL: str = ""          # "gripper" or "peg"
    Config: type[ArmTaskConfig] = ArmTaskConfig
    TASK_OBS_DIM: int = 0

    def __init__(self, config: ArmTaskConfig, obs_type: str = "state", seed: int | None = 0):
        if obs_type not in OBS_TYPES:
            raise ValueError(f"obs_type={obs_type!r} is not one of {OBS_TYPES}")
        if config.reward_type not in REWARD_TYPES:
            raise ValueError(f"reward_type={config.reward_type!r} is not one of {REWARD_TYPES}")
        ticks = 1.0 / (config.control_hz * config.physics_dt)
        if abs(ticks - round(ticks)) > 1e-9 or round(ticks) < 1:
            raise ValueError(f"1/control_hz ({1 / config.control_hz} s) must be a whole number of "
                             f"physics_dt ({config.physics_dt} s); e.g. control_hz=10, "
                             "physics_dt=0.002 gives 50 ticks per policy step")
        if config.camera not in CAMERAS:
            raise ValueError(f"camera={config.camera!r} is not one of {CAMERAS}")
        if config.gripper_action and self.TOOL != "gripper":
            raise ValueError(f"gripper_action=True needs a gripper, but {type(self).__name__} "
                             f"uses the {self.TOOL!r} tool; set gripper_action=False")
        self.config = config
        self.obs_type = obs_type
        # the ROS 2 env client puts the measured wrist wrench here (the model's own sensor
        # sees no contact); None: read the simulated sensor
        self.measured_wrench: np.ndarray | None = None
        self.ticks_per_step = int(round(ticks))
        self.render_mode = "rgb_array"

        self.model = self._load_model()
        self.model.opt.timestep = config.physics_dt
        self.data = mujoco.MjData(self.model)
        self._bind_ids()

        # The controller object is the one the ROS 2 node runs; with energy_tank the
        # PassivityFilter scales each reference update so the tank pays for its energy.
        impedance = CartesianImpedanceController(config.impedance, n_joints=len(ARM_JOINTS))
        controller = (PassivityFilter(impedance, EnergyTank(config.tank))
                      if config.energy_tank else impedance)
        safety = config.safety or SafetyParams(workspace_low=config.workspace_low,
                                                workspace_high=config.workspace_high,
                                                max_step_translation=config.pos_action_scale,
                                                max_step_rotation=config.rot_action_scale,
                                                max_linear_speed=config.max_linear_speed,
                                                max_angular_speed=config.max_angular_speed,
                                                max_force=config.max_force,
                                                max_torque=config.max_torque,
                                                force_filter=config.force_filter)
        self.control = ControlTick(controller, SafetyLimits(safety))
        if config.variable_impedance:
            lo, hi = config.stiffness_range
            k_min, k_max = config.impedance.stiffness_min[:3], config.impedance.stiffness_max[:3]
            if not (0 < lo <= hi and lo >= max(k_min) and hi <= min(k_max)):
                raise ValueError(f"stiffness_range={config.stiffness_range} must lie inside the "
                                 f"controller's translational bounds [{max(k_min)}, "
                                 f"{min(k_max)}] N/m (ImpedanceParams.stiffness_min/max)")
        self.reward_fn: RewardFn = self._build_reward()

        self.action_space = gym.spaces.Box(-1.0, 1.0, (self._action_dim(),), np.float32)
        state_dim = len(self._proprio_obs()) + self.TASK_OBS_DIM
        state_space = gym.spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)
        size = config.image_size
        pixel_space = gym.spaces.Box(0, 255, (3, size, size), np.uint8)
        self.observation_space = {"state": state_space, "pixels": pixel_space,
                                  "pixels_state": gym.spaces.Dict({"pixels": pixel_space,
                                                                   "state": state_space})}[obs_type]
        # One renderer per frame size: the 84x84 observations and the larger video frames the
        # training loop grabs between them each keep their own GL context (rebuilding one on
        # every size change costs tens of milliseconds).
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self.dt = 1.0 / config.control_hz  # seconds per policy step (gymnasium's env.dt)
        self.metadata = {**self.metadata, "render_fps": config.control_hz}
        self._np_random, _ = gym.utils.seeding.np_random(seed)
        self._episode_ready = False

    # ----------------------------------------------------------------------- model
    def _load_model(self) -> mujoco.MjModel:
        spec = mujoco.MjSpec.from_file(str(ASSETS / f"scene_{self.SCENE}.xml"))
        tool = mujoco.MjSpec.from_file(str(ASSETS / f"tool_{self.TOOL}.xml"))
        spec.site("flange").attach_body(tool.body("base"), "tool/", "")
        return spec.compile()

    def _bind_ids(self):
        m = self.model
        dofs = [m.jnt_dofadr[m.joint(name).id] for name in ARM_JOINTS]
        qadr = [m.jnt_qposadr[m.joint(name).id] for name in ARM_JOINTS]
        n = len(ARM_JOINTS)
        if dofs != list(range(n)) or qadr != list(range(n)):
            raise RuntimeError("the arm joints must be the first DoFs of the model (put the arm "
                               "before any other jointed body in the scene)")
        self.n_arm = n
        self.tcp_site = m.site("tool/tcp").id
        self.ft_site = m.site("tool/ft_sensor").id
        self.tool_body = m.body("tool/base").id
        self.tool_mass = float(m.body_subtreemass[self.tool_body])
        self.arm_ctrl = slice(0, n)
        self.gripper_actuator = m.actuator("gripper").id if self.TOOL == "gripper" else None
        self.ft_force_adr = m.sensor_adr[m.sensor("ft_force").id]
        self.ft_torque_adr = m.sensor_adr[m.sensor("ft_torque").id]
        # Preallocated per-tick buffers (no allocation inside the controller loop).
        self._jac = np.zeros((6, m.nv))
        # The arm's columns as their own C-contiguous array: numpy's small matmuls on the
        # strided view self._jac[:, :n] cost about twice as much, several times per tick.
        self._jac_arm = np.zeros((6, n))
        self._tcp_quat = np.zeros(4)
        self._coriolis = np.zeros(n)
        # Views into mjData's arrays (their memory is fixed for the MjData's lifetime), so a
        # tick does not re-wrap them; the ArmState handed to the controller reads through them.
        d = self.data
        self._tcp_xpos = d.site_xpos[self.tcp_site]
        self._tcp_xmat = d.site_xmat[self.tcp_site]
        self._qfrc_bias_arm = d.qfrc_bias[:n]
        self._qfrc_gravcomp_arm = d.qfrc_gravcomp[:n]
        self._ctrl_arm = d.ctrl[:n]
        self._ft_xmat = d.site_xmat[self.ft_site]
        self._ft_xpos = d.site_xpos[self.ft_site]
        self._tool_com = d.subtree_com[self.tool_body]
        self._support = (-self.tool_mass * m.opt.gravity).tolist()   # world force holding the tool
        self._tick_state = ArmState(d.qpos[:n], d.qvel[:n], self._tcp_xpos, self._tcp_quat,
                                    self._jac_arm, self._coriolis)
        # Home pose TCP orientation: tool pointing down; resets and set-points use it.
        d.qpos[:n] = HOME_QPOS
        mujoco.mj_kinematics(m, d)
        mujoco.mju_mat2Quat(self._tcp_quat, d.site_xmat[self.tcp_site])
        self.home_quat = tuple(self._tcp_quat)

    def _build_reward(self) -> RewardFn:
        c = self.config
        terms: list[RewardFn] = [DistanceReward(dense=c.reward_type == "dense",
                                                threshold=c.success_threshold)]
        terms += self._extra_reward_terms()
        terms.append(EnergyCost(scale=1.0, as_penalty=False))  # the cost: energy, counted once
        if c.energy_penalty > 0:  # reward-only: the term above already puts the energy in the cost
            terms.append(EnergyCost(scale=c.energy_penalty, as_penalty=True, counts_as_cost=False))
        return SumReward(*terms)

    def _extra_reward_terms(self) -> list[RewardFn]:
        return []

    def _action_dim(self) -> int:
        c = self.config
        return 3 + 3 * c.rotation_action + c.variable_impedance + c.gripper_action

    # ----------------------------------------------------------------------- task hooks
    def _sample_episode(self, rng: np.random.Generator) -> np.ndarray:
        """Place objects/goal for a new episode; return the TCP start position (world)."""
        raise NotImplementedError

    # Defaults for tasks whose goal is a point for the TCP (`self.goal`, set by _sample_episode).
    def _goal_distance(self) -> float:
        return float(np.linalg.norm(self.goal - self.data.site_xpos[self.tcp_site]))

    def _task_obs(self) -> np.ndarray:
        return (self.goal - self.data.site_xpos[self.tcp_site]) / self.config.goal_obs_scale

    def _step_info_extra(self) -> dict:
        """Task quantities the reward terms read from info (besides goal_distance)."""
        return {}

    def _task_state(self) -> dict:
        """Task variables outside mjData (goal etc.) for get_state."""
        return {"goal": self.goal}

    def _set_task_state(self, state: dict) -> None:
        self.goal = state["goal"]

    def scripted_action(self) -> np.ndarray:
        """A short privileged policy that solves the task (used by tests/demos)."""
        raise NotImplementedError

    # ----------------------------------------------------------------------- kinematics
    @property
    def tcp_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.tcp_site].copy()

    def _arm_state(self, copy_arrays: bool) -> ArmState:
        """ArmState of the current mjData (kinematics and bias forces must be current).

        copy_arrays=False returns the one preallocated ArmState whose arrays the next call
        overwrites (the controller reads it within the tick); True returns independent copies."""
        m, d = self.model, self.data
        mujoco.mj_jacSite(m, d, self._jac[:3], self._jac[3:], self.tcp_site)
        np.copyto(self._jac_arm, self._jac[:, :self.n_arm])
        mujoco.mju_mat2Quat(self._tcp_quat, self._tcp_xmat)
        np.subtract(self._qfrc_bias_arm, self._qfrc_gravcomp_arm, out=self._coriolis)
        state = self._tick_state
        if copy_arrays:  # the controller may keep references at reset; hand it its own copies
            state = ArmState(*(np.array(a) for a in (state.q, state.qd, state.ee_pos,
                                                     state.ee_quat, state.jacobian,
                                                     state.coriolis)))
        return state

    def _solve_ik(self, pos: np.ndarray, quat) -> np.ndarray:
        """Joint angles putting the TCP at (pos, quat): damped least squares from HOME_QPOS."""
        m, d, n, c = self.model, self.data, self.n_arm, self.config
        q = np.array(HOME_QPOS)
        lo, hi = m.jnt_range[:n, 0], m.jnt_range[:n, 1]
        err = np.zeros(6)
        for _ in range(c.ik_iterations):
            d.qpos[:n] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            mujoco.mj_jacSite(m, d, self._jac[:3], self._jac[3:], self.tcp_site)
            mujoco.mju_mat2Quat(self._tcp_quat, d.site_xmat[self.tcp_site])
            err[:3] = pos - d.site_xpos[self.tcp_site]
            err[3:] = quat_error(quat, self._tcp_quat)
            J = self._jac[:, :n]
            dq = J.T @ np.linalg.solve(J @ J.T + c.ik_damping * np.eye(6), err)
            q = np.clip(q + dq, lo, hi)
        return q

    # ----------------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        m, d, c = self.model, self.data, self.config
        mujoco.mj_resetData(m, d)
        start_pos = self._sample_episode(self.np_random)
        q = self._solve_ik(start_pos, self.home_quat)
        d.qpos[:self.n_arm] = q
        d.qvel[:] = 0.0
        if self.gripper_actuator is not None:
            d.ctrl[self.gripper_actuator] = 0.0  # closed
        mujoco.mj_forward(m, d)
        return self.begin_episode()

    def begin_episode(self):
        """Reset part 2 (shared with the ROS 2 env client), with the arm (measured) at its start
        pose and kinematics current: controller, set-point and counters start here."""
        d, c = self.data, self.config
        state = self._arm_state(copy_arrays=True)
        self.reset_pos = d.site_xpos[self.tcp_site].copy()
        self.reset_quat = tuple(self._tcp_quat)
        self.target_pos = self.reset_pos.copy()
        self.target_quat = self.reset_quat
        self.control.reset(state, safe_target=self._safety_target())
        self.stiffness = None
        self.step_count = 0
        self._episode_ready = True
        return self._observation(), {"success": self._goal_distance() <= c.success_threshold}

    def apply_action(self, action) -> tuple[np.ndarray, Any]:
        """Step part 1 (shared with the ROS 2 env client): check the action and move the
        set-point (SafetyLimits clip); -> (clipped action, observation before the step)."""
        if not self._episode_ready:
            raise RuntimeError("call reset() before step() (and again after an episode ends)")
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != self.action_space.shape or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be {self.action_space.shape[0]} finite numbers in "
                             f"[-1, 1], got {action!r}")
        action = np.clip(action, -1.0, 1.0)
        c, m, d = self.config, self.model, self.data
        obs_before = self._last_obs

        # 1. set-point update, clipped into the workspace (and per-step limits) by SafetyLimits.
        i = 3
        proposed = self.target_pos + c.pos_action_scale * action[:3]
        if c.rotation_action:
            delta = rotvec_to_quat(c.rot_action_scale * action[3:6])
            proposed = np.concatenate([proposed, quat_multiply(delta, self.target_quat)])
            i = 6
        safe = self.safety.clip_target(self._safety_target(), proposed)
        self.target_pos = np.asarray(safe[:3], dtype=np.float64)
        if c.rotation_action:
            self.target_quat = quat_normalize(safe[3:])
        if c.variable_impedance:
            lo, hi = c.stiffness_range
            k = lo + 0.5 * (action[i] + 1.0) * (hi - lo)
            rot = c.impedance.rotational_stiffness
            self.stiffness = np.array([k, k, k, rot, rot, rot])
            i += 1
        if c.gripper_action:
            lo, hi = m.actuator_ctrlrange[self.gripper_actuator]
            d.ctrl[self.gripper_actuator] = lo + 0.5 * (action[i] + 1.0) * (hi - lo)
        return action, obs_before

    def step(self, action):
        action, obs_before = self.apply_action(action)
        m, d, c = self.model, self.data, self.config
        # 2. controller ticks at the physics rate: safety trips, hold, impedance law and the
        # energy ledger are robo_rl.controllers.ControlTick, the object the ROS 2 node runs.
        dt = c.physics_dt
        loop = self.control
        loop.clear_ledger()
        loop.set_target(self.target_pos, self.target_quat, self.stiffness)
        loop_step, arm_state = loop.step, self._arm_state  # hoisted: 50x per policy step
        ctrl_arm, tick_wrench = self._ctrl_arm, self._tick_wrench
        for _ in range(self.ticks_per_step):
            mujoco.mj_step1(m, d)
            # the F/T values are those of the last mj_step2, i.e. one tick old, as a real
            # sensor's are (world frame, tool weight removed; check() uses norms)
            tau, _ = loop_step(arm_state(False), tick_wrench(), dt)
            ctrl_arm[:] = tau
            mujoco.mj_step2(m, d)
        if loop.holding:  # the hold pose is the target for the rest of the episode
            self.target_pos, self.target_quat = loop.target_pos, loop.target_quat
        mujoco.mj_forward(m, d)
        return self.finish_step(obs_before, action, loop)

    def finish_step(self, obs_before, action, ledger):
        """Step part 3 (shared with the ROS 2 env client), after the controller ran and the
        measurements are current: observation, reward through the reward module, termination.
        ledger: the tick's ControlTick (or the controller node's status): energy_injected,
        energy_returned, energy_dissipated, rejected, holding, hold_reason."""
        c = self.config
        self.step_count += 1
        energy_injected, energy_returned = ledger.energy_injected, ledger.energy_returned
        energy_dissipated, rejected = ledger.energy_dissipated, ledger.rejected
        holding = ledger.holding
        obs = self._observation()
        distance = self._goal_distance()
        success = distance <= c.success_threshold
        info = {"success": bool(success), "goal_distance": float(distance),
                "energy_cost": float(energy_injected), "energy_returned": float(energy_returned),
                "energy_dissipated": float(energy_dissipated), **self._step_info_extra()}
        if self.tank is not None:
            info["tank_energy"] = float(self.tank.energy)
        if rejected is not None:
            info["controller_rejected"] = rejected
        info["safety_hold"] = bool(holding)
        if holding:
            info["hold_reason"] = str(ledger.hold_reason)
        reward, cost = self.reward_fn(obs_before, action, obs, info)
        info["cost"] = float(cost)
        terminated = bool(success and c.terminate_on_success)
        # a safety hold ends the episode at the end of the step in which it tripped: it is
        # truncated (the MDP did not terminate; the robot was stopped), reset() clears it
        truncated = (self.step_count >= c.episode_steps or holding) and not terminated
        if terminated or truncated:
            self._episode_ready = False
        return obs, float(reward), terminated, truncated, info

    @property
    def tank(self) -> EnergyTank | None:
        return self.control.tank

    @property
    def controller(self) -> CartesianImpedanceController | PassivityFilter:
        return self.control.controller

    @property
    def safety(self) -> SafetyLimits:
        return self.control.safety

    def _safety_target(self) -> np.ndarray:
        if self.config.rotation_action:
            return np.concatenate([self.target_pos, self.target_quat])
        return self.target_pos

    # ----------------------------------------------------------------------- observations
    def _wrench(self) -> np.ndarray:
        """Wrist F/T (force, torque) in the sensor frame, minus the tool's own weight (as the
        real arm's estimate subtracts the configured load): reads zero in free space."""
        if self.measured_wrench is not None:
            return np.array(self.measured_wrench, dtype=np.float64)
        d = self.data
        raw = np.concatenate([d.sensordata[self.ft_force_adr:self.ft_force_adr + 3],
                              d.sensordata[self.ft_torque_adr:self.ft_torque_adr + 3]])
        rot = d.site_xmat[self.ft_site].reshape(3, 3)
        support = -self.tool_mass * self.model.opt.gravity  # world force holding the tool up
        lever = d.subtree_com[self.tool_body] - d.site_xpos[self.ft_site]
        raw[:3] -= rot.T @ support
        raw[3:] -= rot.T @ np.cross(lever, support)
        return raw

    def _tick_wrench(self) -> list[float]:
        """The wrist wrench of _wrench() rotated into the world frame, as 6 floats, for the
        per-tick safety check (~20x cheaper than _wrench; its norms, which check() uses, are
        the same in any frame): R f_raw - support, R t_raw - lever x support."""
        d = self.data
        a, t = self.ft_force_adr, self.ft_torque_adr
        fx, fy, fz = d.sensordata[a:a + 3].tolist()
        tx, ty, tz = d.sensordata[t:t + 3].tolist()
        r = self._ft_xmat.tolist()
        sx, sy, sz = self._support
        cx, cy, cz = self._tool_com.tolist()
        px, py, pz = self._ft_xpos.tolist()
        lx, ly, lz = cx - px, cy - py, cz - pz
        return [r[0] * fx + r[1] * fy + r[2] * fz - sx,
                r[3] * fx + r[4] * fy + r[5] * fz - sy,
                r[6] * fx + r[7] * fy + r[8] * fz - sz,
                r[0] * tx + r[1] * ty + r[2] * tz - (ly * sz - lz * sy),
                r[3] * tx + r[4] * ty + r[5] * tz - (lz * sx - lx * sz),
                r[6] * tx + r[7] * ty + r[8] * tz - (lx * sy - ly * sx)]

    def _proprio_obs(self) -> np.ndarray:
        """TCP pose relative to the reset pose, TCP twist, wrist F/T (+ gripper, tank)."""
        c, d = self.config, self.data
        mujoco.mj_jacSite(self.model, d, self._jac[:3], self._jac[3:], self.tcp_site)
        mujoco.mju_mat2Quat(self._tcp_quat, d.site_xmat[self.tcp_site])
        reset_pos = getattr(self, "reset_pos", d.site_xpos[self.tcp_site])
        reset_quat = getattr(self, "reset_quat", self._tcp_quat)
        wrench = self._wrench()
        parts = [d.site_xpos[self.tcp_site] - reset_pos,
                 quat_error(self._tcp_quat, reset_quat),
                 self._jac[:, :self.n_arm] @ d.qvel[:self.n_arm],
                 wrench[:3] / c.force_obs_scale, wrench[3:] / c.torque_obs_scale]
        if self.TOOL == "gripper":
            parts.append([d.qpos[self.model.jnt_qposadr[self.model.joint("tool/finger_left").id]]])
        if self.tank is not None:
            parts.append([self.tank.energy / c.tank.max_energy])
        return np.concatenate([np.asarray(p, dtype=np.float64).ravel() for p in parts])

    def _state_obs(self) -> np.ndarray:
        return np.concatenate([self._proprio_obs(), self._task_obs()]).astype(np.float32)

    def _observation(self):
        if self.obs_type == "state":
            obs = self._state_obs()
        elif self.obs_type == "pixels":
            obs = self.render_pixels()
        else:
            obs = {"pixels": self.render_pixels(), "state": self._state_obs()}
        self._last_obs = obs
        return obs

    def render_pixels(self, camera: str | None = None, size: int | None = None) -> np.ndarray:
        """uint8 image (3, H, W) from `camera` ("front" or "wrist")."""
        size = size or self.config.image_size
        return np.ascontiguousarray(self._render(camera, size, size).transpose(2, 0, 1))

    def render_frame(self, height: int | None = None, width: int | None = None,
                     camera: str | None = None) -> np.ndarray:
        """uint8 frame (H, W, 3) for videos, e.g. 256x256 while observations are 84x84; one
        frame per policy step plays back in real time at 1 / dt = control_hz frames/s."""
        height = self.config.image_size if height is None else height
        return self._render(camera, height, height if width is None else width)

    def _render(self, camera: str | None, height: int, width: int) -> np.ndarray:
        camera = camera or self.config.camera
        if camera not in CAMERAS:
            raise ValueError(f"camera={camera!r} is not one of {CAMERAS}")
        if not (isinstance(height, (int, np.integer)) and isinstance(width, (int, np.integer))
                and height > 0 and width > 0):
            raise ValueError(f"frame size must be positive integers, got {height!r}x{width!r}")
        renderer = self._renderers.get((height, width))
        if renderer is None:
            renderer = self._renderers[(height, width)] = self._new_renderer(height, width)
        renderer.update_scene(self.data, camera="tool/wrist" if camera == "wrist" else camera)
        return renderer.render()

    def _new_renderer(self, height: int, width: int) -> mujoco.Renderer:
        ensure_offscreen_buffer(self.model, height, width)
        with renderer_errors(f"arm task {type(self).__name__}"):
            return mujoco.Renderer(self.model, height, width)

    def render(self):
        return self.render_frame()

    def close(self):
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    # ----------------------------------------------------------------------- snapshots
    def get_state(self) -> dict[str, Any]:
        """Everything that determines the future: integration state of mjData (qpos, qvel,
        act, time, ctrl, mocap poses, qacc_warmstart, applied forces), controller / safety /
        tank internals, set-points, episode counters, task variables and the RNG."""
        m, d = self.model, self.data
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        sim = np.empty(mujoco.mj_stateSize(m, spec))
        mujoco.mj_getState(m, d, sim, spec)
        return copy.deepcopy({
            "sim": sim, "control": self.control,
            "target_pos": self.target_pos, "target_quat": self.target_quat,
            "stiffness": self.stiffness, "reset_pos": self.reset_pos,
            "reset_quat": self.reset_quat, "step_count": self.step_count,
            "episode_ready": self._episode_ready, "task": self._task_state(),
            "rng": self.np_random.bit_generator.state,
        })

    def set_state(self, state: dict[str, Any]) -> None:
        m, d = self.model, self.data
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        sim = np.asarray(state["sim"], dtype=np.float64)
        if sim.shape != (mujoco.mj_stateSize(m, spec),):
            raise ValueError(f"state['sim'] has shape {sim.shape}, but this task's model needs "
                             f"({mujoco.mj_stateSize(m, spec)},): the snapshot comes from another "
                             "task or model version")
        state = copy.deepcopy(state)
        mujoco.mj_setState(m, d, sim, spec)
        mujoco.mj_forward(m, d)           # derived quantities for observations / rendering
        mujoco.mj_setState(m, d, sim, spec)  # restore anything mj_forward may have touched
        self.control = state["control"]
        self.target_pos, self.target_quat = state["target_pos"], state["target_quat"]
        self.stiffness = state["stiffness"]
        self.reset_pos, self.reset_quat = state["reset_pos"], state["reset_quat"]
        self.step_count = state["step_count"]
        self._episode_ready = state["episode_ready"]
        self._set_task_state(state["task"])
        self.np_random.bit_generator.state = state["rng"]
        self._observation()


def config_from_kwargs(config_cls: type[ArmTaskConfig], task: str, kwargs: dict) -> ArmTaskConfig:
    """Build a task config, rejecting unknown keys with the list of valid ones."""
    check_keys(kwargs, [f.name for f in dataclasses.fields(config_cls)], f"task {task!r} option")
    return config_cls(**kwargs)
