"""MuJoCo arm tasks (robo_rl.tasks) and the reward module (robo_rl.reward)."""

import numpy as np
import pytest

from robo_rl.reward import ActionPenalty, DistanceReward, EnergyCost, SumReward
from robo_rl.tasks import TASKS, make_task, scripted_policy


def run_scripted_episode(env, seed):
    env.reset(seed=seed)
    for _ in range(env.config.episode_steps):
        _, reward, terminated, truncated, info = env.step(scripted_policy(env))
        if terminated or truncated:
            return terminated, reward, info
    raise AssertionError("episode neither terminated nor truncated within episode_steps")


# --------------------------------------------------------------------------- feasibility
@pytest.mark.parametrize("name", TASKS)
def test_scripted_policy_solves_task(name):
    env = make_task(name, seed=0, reward_type="sparse")
    for seed in (0, 1):
        terminated, reward, info = run_scripted_episode(env, seed)
        assert terminated and info["success"], (name, seed, info)
        assert info["goal_distance"] <= env.config.success_threshold
        assert reward == 1.0  # sparse reward through DistanceReward on the final step


# --------------------------------------------------------------------------- snapshots
def rollout(env, actions):
    return [env.step(a) for a in actions]


def assert_same_rollouts(first, second):
    for (o1, r1, te1, tr1, i1), (o2, r2, te2, tr2, i2) in zip(first, second):
        assert np.array_equal(o1, o2)
        assert (r1, te1, tr1) == (r2, te2, tr2)
        assert i1 == i2


@pytest.mark.parametrize("name,options", [
    ("reach", {}), ("push", {"gripper_action": True}), ("peg_insert", {}),
    ("contact_maze", {"energy_tank": True, "variable_impedance": True, "rotation_action": True}),
])
def test_set_state_then_step_is_bit_identical(name, options):
    env = make_task(name, seed=3, **options)
    env.reset()
    rng = np.random.default_rng(0)
    for action in rng.uniform(-1, 1, (4, *env.action_space.shape)):
        env.step(action)
    snapshot = env.get_state()
    actions = rng.uniform(-1, 1, (4, *env.action_space.shape))
    original = rollout(env, actions)
    # same env restored, and a fresh env (other seed, other episode) restored
    env.set_state(snapshot)
    assert_same_rollouts(original, rollout(env, actions))
    other = make_task(name, seed=11, **options)
    other.reset()
    other.step(np.zeros(other.action_space.shape))
    other.set_state(snapshot)
    assert_same_rollouts(original, rollout(other, actions))
    # the task RNG is part of the state: the next episode is the same one
    env.set_state(snapshot)
    other.set_state(snapshot)
    assert np.array_equal(env.reset()[0], other.reset()[0])


def test_set_state_from_another_task_is_refused():
    push, reach = make_task("push"), make_task("reach")
    push.reset()
    reach.reset()
    with pytest.raises(ValueError, match="another task"):
        reach.set_state(push.get_state())


# --------------------------------------------------------------------------- safety
@pytest.mark.parametrize("name", TASKS)
def test_setpoints_never_leave_the_workspace(name):
    env = make_task(name, seed=5, episode_steps=40)
    low, high = np.array(env.config.workspace_low), np.array(env.config.workspace_high)
    rng = np.random.default_rng(1)
    env.reset()
    for _ in range(40):
        # saturated actions push hardest against the box
        previous = env.target_pos.copy()
        env.step(rng.choice([-1.0, 1.0], size=env.action_space.shape))
        assert np.all(env.target_pos >= low) and np.all(env.target_pos <= high)
        assert np.all(np.abs(env.target_pos - previous) <= env.config.pos_action_scale + 1e-12)


# --------------------------------------------------------------------------- spaces
@pytest.mark.parametrize("name", TASKS)
def test_state_spaces_and_dtypes(name):
    env = make_task(name, seed=0)
    obs, info = env.reset()
    assert env.observation_space.dtype == np.float32 and obs.dtype == np.float32
    assert env.observation_space.contains(obs) and "success" in info
    assert env.action_space.shape == (3,) and env.action_space.dtype == np.float32
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == env.observation_space.shape and isinstance(reward, float)
    assert {"success", "goal_distance", "energy_cost", "cost"} <= set(info)


def test_pixel_observations_are_channel_first_uint8():
    env = make_task("push", obs_type="pixels_state", image_size=32, camera="wrist")
    obs, _ = env.reset()
    assert obs["pixels"].shape == (3, 32, 32) and obs["pixels"].dtype == np.uint8
    assert env.observation_space.contains(obs)
    assert obs["pixels"].std() > 0  # an actual picture, not a blank buffer
    env.close()
    env = make_task("reach", obs_type="pixels", image_size=40)
    obs, _ = env.reset()
    assert obs.shape == (3, 40, 40) and env.observation_space.contains(obs)
    env.close()


def test_optional_action_dimensions():
    env = make_task("push", rotation_action=True, variable_impedance=True, gripper_action=True)
    assert env.action_space.shape == (3 + 3 + 1 + 1,)
    env.reset()
    action = np.zeros(8)
    action[6] = -1.0  # lowest stiffness of the range
    action[7] = 1.0   # gripper fully open
    env.step(action)
    assert env.stiffness[0] == env.config.stiffness_range[0]
    assert env.data.ctrl[env.gripper_actuator] == env.model.actuator_ctrlrange[env.gripper_actuator, 1]
    with pytest.raises(ValueError, match="gripper"):
        make_task("peg_insert", gripper_action=True)


def test_bad_actions_are_refused():
    env = make_task("reach")
    env.reset()
    with pytest.raises(ValueError, match="3 finite numbers"):
        env.step(np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="3 finite numbers"):
        env.step(np.zeros(4))


def test_episode_truncates_after_episode_steps():
    env = make_task("reach", episode_steps=3)
    env.reset()
    flags = [env.step(np.zeros(3))[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(3))


def test_unknown_task_and_option_errors():
    with pytest.raises(ValueError) as err:
        make_task("stack")
    assert all(name in str(err.value) for name in TASKS)
    with pytest.raises(ValueError, match="reward_type"):
        make_task("reach", reward_typ="sparse")
    with pytest.raises(ValueError, match="reward_type"):
        make_task("reach", reward_type="shaped")
    with pytest.raises(ValueError, match="camera"):
        make_task("reach", obs_type="pixels", camera="top")


# --------------------------------------------------------------------------- physics checks
def test_wrist_wrench_is_zero_in_free_space_and_sees_contact():
    env = make_task("peg_insert", seed=0)
    obs, _ = env.reset()
    force = obs[12:15] * env.config.force_obs_scale
    assert np.linalg.norm(force) < 0.05  # tool weight compensated, arm at rest
    # press the peg straight down on the fixture top (beside the hole)
    env.goal = env.goal + np.array([0.04, 0.0, 0.0])
    for _ in range(30):
        obs, *_ = env.step(scripted_policy(env))
    force = obs[12:15] * env.config.force_obs_scale
    assert force[2] > 5.0  # the fixture pushes back along the tool axis (z points down the peg)


def test_dense_reward_and_energy_cost_come_from_the_reward_module():
    env = make_task("reach", seed=2, energy_tank=True)
    env.reset()
    tank_floor = env.config.tank.min_energy
    for action in np.random.default_rng(0).uniform(-1, 1, (10, 3)):
        _, reward, _, _, info = env.step(action)
        assert reward == pytest.approx(-info["goal_distance"], abs=1e-12)
        assert info["cost"] == info["energy_cost"] >= 0.0
        assert info["tank_energy"] >= tank_floor


def test_energy_penalty_counts_the_energy_once_in_the_cost():
    # hand case: distance 0.1 m, energy 2 J, penalty 0.5 -> reward -0.1 - 0.5 * 2, cost 2 (not 3)
    env = make_task("reach", seed=0, energy_penalty=0.5)
    info = {"goal_distance": 0.1, "energy_cost": 2.0}
    reward, cost = env.reward_fn(None, None, None, info)
    assert reward == pytest.approx(-1.1, abs=1e-12) and cost == 2.0
    env.reset()
    for action in np.random.default_rng(1).uniform(-1, 1, (5, 3)):
        _, reward, _, _, info = env.step(action)
        assert info["cost"] == info["energy_cost"]
        assert reward == pytest.approx(-info["goal_distance"] - 0.5 * info["energy_cost"],
                                       abs=1e-12)


def test_push_with_no_reachable_goal_raises_instead_of_hanging():
    # every block position is < 0.4 m from every point of the goal box: 0.5 m is impossible
    env = make_task("push", push_distance=(0.5, 0.6))
    with pytest.raises(ValueError, match="push_distance.*goal_low/goal_high"):
        env.reset()


def test_contact_maze_computes_path_progress_once_per_step(monkeypatch):
    import robo_rl.tasks.contact_maze as maze
    env = make_task("contact_maze", seed=0)
    env.reset()
    calls, path_progress = [], maze.path_progress

    def counting(point, path):
        calls.append(point.copy())
        return path_progress(point, path)

    monkeypatch.setattr(maze, "path_progress", counting)
    for _ in range(3):
        action = scripted_policy(env)
        calls.clear()
        obs, reward, *_ = env.step(action)
        assert len(calls) == 1  # shared by the observation and the goal distance
        s, off_path = path_progress(env.tcp_pos[:2], env.path)
        assert obs[-1] == np.float32(s / env.total_length)
        assert reward == pytest.approx(-(env.total_length - s + off_path), abs=1e-12)


# --------------------------------------------------------------------------- reward module
def test_distance_reward_dense_and_sparse_values():
    info = {"goal_distance": 0.03}
    assert DistanceReward(dense=True)(None, None, None, info) == (-0.03, 0.0)
    assert DistanceReward(dense=True, weight=2.0)(None, None, None, info).reward == -0.06
    assert DistanceReward(dense=False, threshold=0.03)(None, None, None, info) == (1.0, 0.0)
    assert DistanceReward(dense=False, threshold=0.029)(None, None, None, info) == (0.0, 0.0)
    # relabelling from a stored goal-relative vector: |(3, 4)| = 5
    next_obs = np.array([9.0, 3.0, 4.0, 9.0])
    term = DistanceReward(dense=True, obs_slice=(1, 3))
    assert term(None, None, next_obs, {}).reward == -5.0
    assert not term.is_success(next_obs, {})


def test_energy_cost_penalty_and_sum():
    info = {"goal_distance": 0.5, "energy_cost": 0.25}
    assert EnergyCost()(None, None, None, info) == (0.0, 0.25)
    assert EnergyCost(scale=4.0, as_penalty=True)(None, None, None, info) == (-1.0, 1.0)
    assert EnergyCost(scale=4.0, as_penalty=True,
                      counts_as_cost=False)(None, None, None, info) == (-1.0, 0.0)
    assert ActionPenalty(weight=0.5)(None, np.array([1.0, 2.0]), None, info).reward == -2.5
    total = SumReward(DistanceReward(dense=True), EnergyCost(scale=2.0),
                      ActionPenalty(weight=1.0))
    reward, cost = total(None, np.array([0.0, 1.0]), None, info)
    assert reward == -1.5 and cost == 0.5


def test_reward_errors_name_the_problem():
    with pytest.raises(KeyError, match="energy_cost"):
        EnergyCost()(None, None, None, {"goal_distance": 0.1})
    with pytest.raises(ValueError, match="threshold"):
        DistanceReward(threshold=0.0)
    with pytest.raises(ValueError, match="neither reward nor cost"):
        EnergyCost(as_penalty=False, counts_as_cost=False)
    with pytest.raises(ValueError, match="at least one term"):
        SumReward()


# --------------------------------------------------------------------------- video frames
def test_render_frame_keeps_one_renderer_per_size():
    env = make_task("reach", obs_type="pixels", image_size=32)
    obs, _ = env.reset()
    frame = env.render_frame(48, 40)
    assert frame.shape == (48, 40, 3) and frame.dtype == np.uint8 and frame.std() > 0
    renderers = dict(env._renderers)
    assert set(renderers) == {(32, 32), (48, 40)}
    # observation and video frames alternate, as in an eval episode: nothing is rebuilt
    obs, *_ = env.step(np.ones(3))
    env.render_frame(48, 40)
    assert env._renderers == renderers
    assert all(env._renderers[size] is renderers[size] for size in renderers)
    # the same camera, size and state give the observation's picture exactly
    assert np.array_equal(env.render_frame(32), obs.transpose(1, 2, 0))
    with pytest.raises(ValueError, match="positive integers"):
        env.render_frame(0, 32)
    env.close()
    assert env._renderers == {}


def test_video_plays_at_the_policy_rate():
    from robo_rl.envs import EnvConfig, make_env

    assert make_task("reach").dt == pytest.approx(0.1)
    assert make_task("reach", control_hz=5.0, physics_dt=0.002).dt == pytest.approx(0.2)
    env = make_env(EnvConfig(name="arm/reach", video_size=48), seed=0)
    assert env.video_fps == pytest.approx(10.0)  # one frame per 0.1 s policy step
    env.reset()
    assert env.render_frame().shape == (48, 48, 3)
    assert env.render_frame(40, 56).shape == (40, 56, 3)
    env.close()


# --------------------------------------------------------------------------- control tick
def test_tick_state_is_the_current_kinematics_in_preallocated_arrays():
    import mujoco

    env = make_task("push", seed=1)  # gripper fingers: the model has more DoFs than the arm
    env.reset()
    env.step(np.array([1.0, -1.0, 0.5]))
    m, d, n = env.model, env.data, env.n_arm
    assert m.nv > n
    mujoco.mj_step1(m, d)  # mid-tick state: kinematics and bias forces of a new time step
    state = env._arm_state(copy_arrays=False)
    jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
    mujoco.mj_jacSite(m, d, jacp, jacr, env.tcp_site)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, d.site_xmat[env.tcp_site])
    assert np.array_equal(state.jacobian, np.vstack([jacp, jacr])[:, :n])
    assert state.jacobian.flags.c_contiguous
    assert np.array_equal(state.ee_quat, quat)
    assert np.array_equal(state.ee_pos, d.site_xpos[env.tcp_site])
    assert np.array_equal(state.q, d.qpos[:n]) and np.array_equal(state.qd, d.qvel[:n])
    assert np.array_equal(state.coriolis, d.qfrc_bias[:n] - d.qfrc_gravcomp[:n])
    assert env._arm_state(copy_arrays=False) is state  # the same buffers every tick
    copied = env._arm_state(copy_arrays=True)
    assert not any(np.shares_memory(a, b) for a, b in
                   zip((copied.q, copied.jacobian, copied.ee_quat), (state.q, state.jacobian,
                                                                     state.ee_quat)))


def test_controller_holds_torque_when_the_pseudo_inverse_system_is_singular():
    from robo_rl.controllers import ArmState, CartesianImpedanceController

    n = 7
    jacobian = np.random.default_rng(0).normal(size=(6, n))
    state = ArmState(np.zeros(n), np.zeros(n), np.zeros(3), np.array([1.0, 0, 0, 0]), jacobian)
    ctrl = CartesianImpedanceController(n_joints=n)
    ctrl.reset(state)
    tau, info = ctrl.step(state, np.array([0.005, 0, 0]), np.array([1.0, 0, 0, 0]), dt=0.002)
    assert info["rejected"] is None and np.any(tau != 0)
    absurd = ArmState(np.zeros(n), np.zeros(n), np.zeros(3), np.array([1.0, 0, 0, 0]),
                      np.full((6, n), 1e160))  # J J^T overflows: the 6x6 solve gives NaN
    with np.errstate(all="ignore"):
        held, info = ctrl.step(absurd, np.zeros(3), np.array([1.0, 0, 0, 0]), dt=0.002)
    assert np.array_equal(held, tau) and "not invertible" in info["rejected"]


# --------------------------------------------------------------------------- passivity
def cumulative_energy_excess(env, actions):
    """max over the episode of injected - (T_0 - T_min + dissipated + returned), in J."""
    env.reset(seed=0)
    tank = env.config.tank
    injected = 0.0
    budget = tank.initial_energy - tank.min_energy
    excess = -np.inf
    for action in actions:
        _, _, terminated, truncated, info = env.step(action)
        assert info["energy_dissipated"] >= 0.0 and info["energy_returned"] >= 0.0
        injected += info["energy_cost"]
        budget += info["energy_dissipated"] + info["energy_returned"]
        excess = max(excess, injected - budget)
        if terminated or truncated:
            break
    return excess


def test_energy_tank_keeps_injected_energy_within_the_passivity_budget():
    # saturated set-point jumps with the stiffness swinging 300 <-> 2000 N/m every step
    rng = np.random.default_rng(0)
    actions = np.sign(rng.uniform(-1, 1, (100, 4)))
    actions[:, 3] = np.where(np.arange(100) % 2 == 0, 1.0, -1.0)
    unfiltered = make_task("contact_maze", variable_impedance=True, energy_tank=False)
    filtered = make_task("contact_maze", variable_impedance=True, energy_tank=True)
    assert cumulative_energy_excess(unfiltered, actions) > 0.1  # the bound is broken without it
    assert cumulative_energy_excess(filtered, actions) <= 1e-9


# --------------------------------------------------------------------------- safety hold
def record_ticks(env):
    """Wrap the task's controller step to keep every tick's info (end-to-end observation), plus
    the TCP position MuJoCo measured for that tick and the reference the controller then held."""
    ticks, step = [], env.controller.step
    impedance = env.controller.controller if hasattr(env.controller, "tank") else env.controller

    def recording(*args, **kwargs):
        tcp = env.data.site_xpos[env.tcp_site].copy()        # MuJoCo's pose at this tick
        tau, info = step(*args, **kwargs)
        ticks.append({**info, "tcp": tcp, "reference": impedance.reference_pos.copy()})
        return tau, info

    env.controller.step = recording
    return ticks


@pytest.mark.parametrize("energy_tank", [False, True])
def test_hard_push_trips_a_hold_through_the_task_step(energy_tank):
    env = make_task("reach", seed=0, energy_tank=energy_tank)
    env.reset(seed=0)
    for _ in range(2):
        _, _, _, truncated, info = env.step(np.array([1.0, 0.0, 0.0]))   # reference lags 2 cm
        assert not info["safety_hold"] and not truncated
    ticks = record_ticks(env)
    env.data.xfrc_applied[env.tool_body, :3] = (0.0, 0.0, -400.0)       # hard push down
    _, _, terminated, truncated, info = env.step(np.array([1.0, 0.0, 0.0]))
    assert info["safety_hold"] and "force" in info["hold_reason"]
    assert truncated and not terminated
    first = next(i for i, t in enumerate(ticks) if t["holding"])
    stiffness = env.controller.controller.stiffness if energy_tank else env.controller.stiffness
    clip = env.config.impedance.error_clip_translation
    # spring force from the measured TCP (MuJoCo) and the reference the controller pulled toward
    spring = [np.linalg.norm(stiffness[:3] * np.clip(t["tcp"] - t["reference"], -clip, clip))
              for t in ticks]
    assert spring[first - 1] > 5.0          # the spring was pulling toward the lagging reference
    assert spring[first] == 0.0             # the reference jumped to the measured pose
    assert spring[first + 1] < 5.0          # next tick: K * one tick of motion (~1 m/s * 2 ms)
    damping = np.linalg.norm(np.asarray(ticks[first]["force"][:3]))
    assert damping > 0.1                    # the damper still acts on the moving arm
    np.testing.assert_allclose(env.target_pos, env.safety.hold_target[:3])
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(3))
    env.data.xfrc_applied[:] = 0.0
    env.reset(seed=1)
    assert not env.safety.holding and not env.controller.holding
    _, _, _, truncated, info = env.step(np.zeros(3))
    assert not info["safety_hold"] and not truncated and "hold_reason" not in info


def test_scripted_episodes_never_trip_the_hold():
    for name in TASKS:
        env = make_task(name, seed=0)
        env.reset(seed=0)
        for _ in range(env.config.episode_steps):
            _, _, terminated, truncated, info = env.step(scripted_policy(env))
            assert not info["safety_hold"], (name, info.get("hold_reason"))
            if terminated or truncated:
                break


def test_per_tick_wrench_has_the_observation_wrench_norms_in_contact():
    env = make_task("peg_insert", seed=0)
    env.reset()
    env.goal = env.goal + np.array([0.04, 0.0, 0.0])   # press beside the hole
    for _ in range(30):
        env.step(scripted_policy(env))
    wrench, fast = env._wrench(), np.array(env._tick_wrench())
    assert np.linalg.norm(wrench[:3]) > 5.0
    np.testing.assert_allclose(np.linalg.norm(fast[:3]), np.linalg.norm(wrench[:3]), rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(fast[3:]), np.linalg.norm(wrench[3:]), rtol=1e-9,
                               atol=1e-12)
