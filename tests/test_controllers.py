"""Controllers: impedance law, energy tank / passivity filter, safety limits (numpy plants only)."""

import math

import numpy as np
import pytest

from robo_rl.controllers import (ArmState, CartesianImpedanceController, EnergyTank,
                                 EnergyTankParams, ImpedanceParams, PassivityFilter, SafetyLimits,
                                 SafetyParams, quat_error, quat_multiply, quat_slerp,
                                 quat_to_rotvec, rotvec_to_quat)
from reference_energy import batch_storage

IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])
DT = 0.001


class FreeBody:
    """Unit-mass, unit-inertia rigid body driven directly by a wrench: 6 'joints', J = I."""

    def __init__(self, pos=(0.0, 0.0, 0.0), quat=IDENTITY):
        self.pos = np.array(pos, float)
        self.quat = np.array(quat, float)
        self.vel = np.zeros(6)

    def state(self):
        return ArmState(q=np.concatenate([self.pos, quat_to_rotvec(self.quat)]), qd=self.vel.copy(),
                        ee_pos=self.pos.copy(), ee_quat=self.quat.copy(), jacobian=np.eye(6))

    def step(self, wrench, dt=DT):
        self.vel += wrench * dt                       # semi-implicit Euler
        self.pos += self.vel[:3] * dt
        self.quat = np.array(quat_multiply(rotvec_to_quat(self.vel[3:] * dt), self.quat))


def free_body_params(**kw):
    base = dict(torque_limit=1000.0, max_torque_rate=1e6, nullspace_stiffness=0.0)
    base.update(kw)
    return ImpedanceParams(**base)


def huber(e, k, c):
    a = abs(e)
    return k * (0.5 * a * a if a <= c else c * (a - 0.5 * c))


def storage(pos, quat, ref_pos, ref_quat, stiffness, clip=(0.01,) * 3 + (0.05,) * 3):
    """Independent re-implementation of the spring storage V(x; r)."""
    error = list(np.asarray(pos) - np.asarray(ref_pos)) + list(quat_error(quat, ref_quat))
    return sum(huber(e, k, c) for e, k, c in zip(error, stiffness, clip))


# ---------------------------------------------------------------- quaternions
def test_quaternion_helpers_on_hand_checked_rotations():
    quarter_z = (math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4))
    np.testing.assert_allclose(quat_to_rotvec(quarter_z), (0, 0, math.pi / 2), atol=1e-15)
    np.testing.assert_allclose(quat_to_rotvec([-v for v in quarter_z]), (0, 0, math.pi / 2),
                               atol=1e-15)  # -q is the same rotation
    r = (0.3, -0.2, 0.7)
    np.testing.assert_allclose(quat_to_rotvec(rotvec_to_quat(r)), r, atol=1e-15)
    np.testing.assert_allclose(quat_to_rotvec(rotvec_to_quat((1e-9, 0, 0))), (1e-9, 0, 0),
                               rtol=1e-12)
    # error of (quarter turn about z) * q_ref relative to q_ref is that quarter turn
    q_ref = rotvec_to_quat((0.1, 0.4, -0.3))
    np.testing.assert_allclose(quat_error(quat_multiply(quarter_z, q_ref), q_ref),
                               (0, 0, math.pi / 2), atol=1e-12)
    half = quat_slerp(IDENTITY, quarter_z, 0.5)
    np.testing.assert_allclose(quat_to_rotvec(half), (0, 0, math.pi / 4), atol=1e-15)
    np.testing.assert_allclose(quat_slerp(IDENTITY, quarter_z, 1.0), quarter_z, atol=1e-15)


# ---------------------------------------------------------------- impedance law
def test_wrench_matches_hand_computation():
    ctrl = CartesianImpedanceController(free_body_params(filter_alpha=1.0, damping_ratio=0.5), 6)
    body = FreeBody(pos=(0.004, 0.03, 0.0), quat=rotvec_to_quat((0.2, 0.0, 0.0)))
    body.vel[:] = (0.1, 0.0, 0.0, 0.0, 0.0, 0.3)
    ctrl.reset(body.state())
    tau, info = ctrl.step(body.state(), np.zeros(3), IDENTITY)
    d_t, d_r = math.sqrt(2000.0), math.sqrt(150.0)     # zeta = 0.5: D = 2 * 0.5 * sqrt(K)
    expected = [-2000 * 0.004 - d_t * 0.1,              # inside the clip
                -2000 * 0.01,                           # 0.03 m clipped to 0.01 m
                0.0,
                -150 * 0.05,                            # 0.2 rad clipped to 0.05 rad
                0.0,
                -d_r * 0.3]
    np.testing.assert_allclose(info["force"], expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(info["clipped_error"], [0.004, 0.01, 0, 0.05, 0, 0], atol=1e-15)
    # J = I and no nullspace / rate / torque limits in play: tau is the wrench
    np.testing.assert_allclose(tau, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(info["power_dissipated"], d_t * 0.01 + d_r * 0.09, rtol=1e-12)


def test_nonpassive_energy_of_stiffness_and_setpoint_changes_is_exact():
    ctrl = CartesianImpedanceController(free_body_params(filter_alpha=1.0), 6)
    body = FreeBody(pos=(0.005, 0.0, 0.0))
    ctrl.reset(FreeBody().state())                   # reference at the origin
    state = body.state()
    k_up = [3000.0, 2000.0, 2000.0, 150.0, 150.0, 150.0]
    _, info = ctrl.step(state, np.zeros(3), IDENTITY, stiffness=k_up)
    assert info["energy_nonpassive"] == pytest.approx(1000.0 * 0.5 * 0.005 ** 2, rel=1e-12)
    assert info["power_nonpassive"] == pytest.approx(info["energy_nonpassive"] / DT, rel=1e-12)
    # set-point moved away by 3 mm along x (error 5 mm -> 8 mm, inside the clip)
    _, info = ctrl.step(state, np.array([-0.003, 0, 0]), IDENTITY, stiffness=k_up)
    assert info["energy_nonpassive"] == pytest.approx(3000 * 0.5 * (0.008 ** 2 - 0.005 ** 2),
                                                      rel=1e-9)
    # beyond the clip the storage grows linearly: error 8 mm -> 20 mm
    _, info = ctrl.step(state, np.array([-0.015, 0, 0]), IDENTITY, stiffness=k_up)
    assert info["energy_nonpassive"] == pytest.approx(
        3000 * (0.01 * (0.02 - 0.005) - 0.5 * 0.008 ** 2), rel=1e-9)
    # lowering the stiffness hands energy back (negative)
    _, info = ctrl.step(state, np.array([-0.015, 0, 0]), IDENTITY,
                        stiffness=[2000.0, 2000.0, 2000.0, 150.0, 150.0, 150.0])
    assert info["energy_nonpassive"] == pytest.approx(-1000 * 0.01 * (0.02 - 0.005), rel=1e-9)


def test_reference_filter_is_dt_consistent():
    def run(dt, ticks):
        ctrl = CartesianImpedanceController(free_body_params(), 6)
        state = FreeBody().state()
        ctrl.reset(state)
        target_quat = rotvec_to_quat((0.0, 0.0, 0.5))
        for _ in range(ticks):
            ctrl.step(state, np.array([0.1, 0.0, 0.0]), target_quat, dt=dt)
        return ctrl.reference_pos, ctrl.reference_quat

    pos_fine, quat_fine = run(0.001, 200)
    pos_coarse, quat_coarse = run(0.002, 100)
    np.testing.assert_allclose(pos_fine, pos_coarse, rtol=1e-12)
    np.testing.assert_allclose(quat_fine, quat_coarse, atol=1e-12)
    # one tick at 1 kHz moves alpha = 0.005 of the way; 200 ticks: 1 - 0.995^200
    np.testing.assert_allclose(pos_fine[0], 0.1 * (1 - 0.995 ** 200), rtol=1e-12)
    np.testing.assert_allclose(quat_to_rotvec(quat_fine)[2], 0.5 * (1 - 0.995 ** 200), rtol=1e-9)


def test_converges_to_fixed_target_with_spring_force_bounded_by_clip():
    params = free_body_params()
    ctrl = CartesianImpedanceController(params, 6)
    body = FreeBody()
    ctrl.reset(body.state())
    target_pos, target_quat = np.array([0.10, -0.05, 0.08]), rotvec_to_quat((0.3, -0.2, 0.4))
    bound = np.array([2000 * 0.01] * 3 + [150 * 0.05] * 3)
    for _ in range(4000):
        state = body.state()
        tau, info = ctrl.step(state, target_pos, target_quat)
        spring = ctrl.stiffness * info["clipped_error"]
        assert np.all(np.abs(spring) <= bound)
        body.step(tau)
    assert np.linalg.norm(body.pos - target_pos) < 1e-3
    assert np.linalg.norm(quat_error(body.quat, target_quat)) < 1e-3


def test_contact_force_is_bounded_by_stiffness_times_clip():
    """Target 5 cm inside a rigid wall at x = 0: the push settles at exactly K_t * c_t."""
    ctrl = CartesianImpedanceController(free_body_params(), 6)
    body = FreeBody()
    ctrl.reset(body.state())
    target = np.array([0.05, 0.0, 0.0])
    push = []
    for _ in range(3000):
        tau, info = ctrl.step(body.state(), target, IDENTITY)
        push.append(info["force"][0])
        body.step(tau)
        if body.pos[0] > 0.0:                # rigid wall: inelastic contact
            body.pos[0], body.vel[0] = 0.0, 0.0
    spring_bound = 2000.0 * 0.01
    # damping only ever opposes the approach, so the total push never exceeds the spring bound
    assert max(push) <= spring_bound + 1e-9
    assert push[-1] == pytest.approx(spring_bound, rel=1e-12)


def test_torque_rate_and_torque_limits_hold_under_random_targets():
    rng = np.random.default_rng(0)
    params = ImpedanceParams(translational_stiffness=4000.0, rotational_stiffness=300.0)
    ctrl = CartesianImpedanceController(params, 7)
    limit = np.array([87.0] * 4 + [12.0] * 3)

    def random_state():
        return ArmState(q=rng.uniform(-2, 2, 7), qd=rng.normal(0, 2, 7),
                        ee_pos=np.array([0.5, 0, 0.3]) + rng.normal(0, 0.05, 3),
                        ee_quat=np.array(rotvec_to_quat(rng.normal(0, 0.5, 3))),
                        jacobian=rng.normal(0, 0.5, (6, 7)), coriolis=rng.normal(0, 5, 7))

    ctrl.reset(random_state())
    prev = ctrl.torque
    saturated_rate = 0
    for tick in range(20000):
        dt = 0.001 if tick % 2 else 0.002
        target = np.array([0.5, 0, 0.3]) + rng.uniform(-0.3, 0.3, 3)
        tau, _ = ctrl.step(random_state(), target, rotvec_to_quat(rng.normal(0, 1, 3)),
                           stiffness=rng.uniform(params.stiffness_min, params.stiffness_max), dt=dt)
        step = np.abs(tau - prev)
        assert np.all(step <= 1000.0 * dt + 1e-9)
        assert np.all(np.abs(tau) <= limit)
        saturated_rate += np.any(step >= 1000.0 * dt - 1e-9)
        prev = tau
    assert saturated_rate > 1000     # the limit was actually active


def test_nullspace_torque_does_not_act_on_the_task():
    rng = np.random.default_rng(1)
    params = ImpedanceParams(nullspace_stiffness=4.0, pinv_damping=1e-7, torque_limit=1e3,
                             max_torque_rate=1e9, filter_alpha=1.0)
    ctrl = CartesianImpedanceController(params, 7)
    jac = rng.normal(0, 0.5, (6, 7))
    posture = rng.normal(0, 1, 7)
    state = ArmState(q=np.zeros(7), qd=np.zeros(7), ee_pos=np.array([0.5, 0, 0.3]),
                     ee_quat=IDENTITY, jacobian=jac)
    ctrl.reset(state, nullspace_posture=posture)
    tau, info = ctrl.step(state, state.ee_pos, IDENTITY)   # zero pose error, at rest
    np.testing.assert_allclose(info["force"], 0.0, atol=1e-15)
    expected = (np.eye(7) - jac.T @ np.linalg.pinv(jac.T)) @ (4.0 * posture)
    np.testing.assert_allclose(tau, expected, atol=1e-9)
    np.testing.assert_allclose(jac @ tau, 0.0, atol=1e-9)
    assert np.linalg.norm(tau) > 1.0


def test_redundant_planar_arm_reaches_target():
    """4-link planar arm (unit joint inertia, hand-written kinematics): task converges."""
    links = np.array([0.3, 0.25, 0.2, 0.1])

    def arm_state(q, qd):
        angles = np.cumsum(q)
        x, y = links @ np.cos(angles), links @ np.sin(angles)
        jac = np.zeros((6, 4))
        for j in range(4):
            jac[0, j] = -links[j:] @ np.sin(angles[j:])
            jac[1, j] = links[j:] @ np.cos(angles[j:])
            jac[5, j] = 1.0
        quat = np.array(rotvec_to_quat((0.0, 0.0, angles[-1])))
        return ArmState(q=q.copy(), qd=qd.copy(), ee_pos=np.array([x, y, 0.0]), ee_quat=quat,
                        jacobian=jac)

    params = ImpedanceParams(translational_stiffness=200.0, rotational_stiffness=20.0,
                             torque_limit=50.0, nullspace_stiffness=1.0)
    ctrl = CartesianImpedanceController(params, 4)
    q, qd = np.array([0.3, 0.4, 0.3, 0.2]), np.zeros(4)
    ctrl.reset(arm_state(q, qd))
    start = arm_state(q, qd).ee_pos
    target_pos, target_quat = start + np.array([-0.08, 0.05, 0.0]), rotvec_to_quat((0, 0, 1.0))
    # D = 2 sqrt(K) assumes unit task-space mass; this arm's differs, so the plant gets some
    # viscous joint friction (as real joints have) to settle within the test's time.
    joint_friction = 1.0
    for _ in range(10000):
        tau, info = ctrl.step(arm_state(q, qd), target_pos, target_quat)
        assert info["rejected"] is None
        qd += (tau - joint_friction * qd) * DT
        q += qd * DT
    final = arm_state(q, qd)
    assert np.linalg.norm(final.ee_pos - target_pos) < 1e-3
    assert abs(quat_error(final.ee_quat, target_quat)[2]) < 1e-3


# ---------------------------------------------------------------- energy tank
def test_tank_hand_checked_ticks():
    tank = EnergyTank(EnergyTankParams(initial_energy=1.0, min_energy=0.2, max_energy=1.5,
                                       refill_fraction=0.5, dt=0.01))
    assert tank.step(50.0, 0.0) == 1.0                 # 0.5 J requested, 0.8 J available
    assert tank.energy == pytest.approx(0.5) and tank.energy_cost == pytest.approx(0.5)
    gamma = tank.step(100.0, 0.0)                      # 1 J requested, 0.3 J available
    assert gamma == pytest.approx(0.3) and tank.energy == 0.2
    assert tank.step(10.0, 0.0) == 0.0 and tank.energy == 0.2   # empty: nothing paid
    tank.step(0.0, 40.0)                               # refill sigma * 0.4 J = 0.2 J
    assert tank.energy == pytest.approx(0.4)
    tank.step(-200.0, 0.0)                             # 2 J handed back, capped at T_max
    assert tank.energy == 1.5 and tank.total_returned == pytest.approx(1.1)
    tank.step(0.0, 100.0)                              # full: sigma = 0
    assert tank.energy == 1.5 and tank.total_refilled == pytest.approx(0.2)
    assert tank.step(float("nan"), 0.0) == 0.0 and tank.energy == 1.5
    assert "not finite" in tank.last_rejected


def test_tank_invariants_under_one_million_adversarial_ticks():
    rng = np.random.default_rng(2)
    params = EnergyTankParams(initial_energy=0.5, min_energy=0.1, max_energy=1.0, dt=0.001)
    tank = EnergyTank(params)
    n = 1_000_000
    # heavy-tailed demands that mostly try to drain the tank, small and bursty refills
    demand = (rng.standard_cauchy(n) * 50.0 + 20.0).tolist()
    dissipated = (rng.exponential(5.0, n) * (rng.random(n) < 0.3)).tolist()
    step, floor, ceiling = tank.step, params.min_energy, params.max_energy
    lowest, highest, throttled = math.inf, -math.inf, 0
    for p_np, p_diss in zip(demand, dissipated):
        gamma = step(p_np, p_diss)
        energy = tank.energy
        lowest = min(lowest, energy)
        highest = max(highest, energy)
        throttled += gamma < 1.0
    assert lowest >= floor and highest <= ceiling
    assert lowest == floor and throttled > 1000          # the floor was actually reached
    assert tank.total_drawn <= (params.initial_energy - floor + tank.total_refilled
                                + tank.total_returned)
    assert tank.energy == pytest.approx(params.initial_energy + tank.total_refilled
                                        + tank.total_returned - tank.total_drawn, abs=1e-8)  # rounding, 1e6 ticks
    assert tank.total_overdraft == 0.0


def _adversarial_commands(rng, params, ticks, hold):
    """Set-points jumping up to 5 cm / 0.5 rad and stiffness jumping within its bounds."""
    for tick in range(ticks):
        if tick % hold == 0:
            pos = rng.uniform(-0.05, 0.05, 3)
            quat = np.array(rotvec_to_quat(rng.uniform(-0.5, 0.5, 3)))
            stiffness = rng.uniform(params.stiffness_min, params.stiffness_max)
        yield pos, quat, stiffness


def test_batch_storage_matches_scalar_reference():
    rng = np.random.default_rng(5)
    pos, ref_pos = rng.normal(0, 0.02, (50, 3)), rng.normal(0, 0.02, (50, 3))
    quat = np.array([rotvec_to_quat(r) for r in rng.normal(0, 0.3, (50, 3))])
    ref_quat = -np.array([rotvec_to_quat(r) for r in rng.normal(0, 0.3, (50, 3))])
    k = rng.uniform(100, 4000, (50, 6))
    expected = [storage(*row) for row in zip(pos, quat, ref_pos, ref_quat, k)]
    np.testing.assert_allclose(batch_storage(pos, quat, ref_pos, ref_quat, k), expected,
                               rtol=1e-12)


def test_passivity_filter_bounds_injected_energy_over_full_controller_ticks():
    ticks = 100_000
    params = free_body_params(filter_alpha=0.2)
    tank_params = EnergyTankParams(initial_energy=0.3, min_energy=0.05, max_energy=0.6)
    pf = PassivityFilter(CartesianImpedanceController(params, 6), EnergyTank(tank_params))
    ctrl, tank = pf.controller, pf.tank
    body = FreeBody()
    pf.reset(body.state())
    log = {key: [] for key in ("pos", "quat", "ref_pos", "ref_quat", "k", "reported", "scale",
                               "energy", "refilled", "returned")}
    log["ref_pos"].append(ctrl.reference_pos)
    log["ref_quat"].append(ctrl.reference_quat)
    log["k"].append(ctrl.stiffness)
    for pos, quat, stiffness in _adversarial_commands(np.random.default_rng(3), params, ticks, 50):
        state = body.state()
        tau, info = pf.step(state, pos, quat, stiffness)
        for key, value in (("pos", state.ee_pos), ("quat", state.ee_quat),
                           ("ref_pos", ctrl.reference_pos), ("ref_quat", ctrl.reference_quat),
                           ("k", ctrl.stiffness), ("reported", info["energy_nonpassive"]),
                           ("scale", info["passivity_scale"]), ("energy", tank.energy),
                           ("refilled", tank.total_refilled), ("returned", tank.total_returned)):
            log[key].append(value)
        body.step(tau)
    log = {key: np.array(value) for key, value in log.items()}
    # storage jump of each tick's reference update at the pose of that tick, recomputed here
    jump = (batch_storage(log["pos"], log["quat"], log["ref_pos"][1:], log["ref_quat"][1:],
                          log["k"][1:])
            - batch_storage(log["pos"], log["quat"], log["ref_pos"][:-1], log["ref_quat"][:-1],
                            log["k"][:-1]))
    np.testing.assert_allclose(jump, log["reported"], atol=1e-12)
    bound = tank_params.initial_energy - tank_params.min_energy + log["refilled"]
    assert np.all(np.cumsum(jump) <= bound + 1e-9)                 # net energy injected
    assert np.all(np.cumsum(np.maximum(jump, 0.0)) <= bound + log["returned"] + 1e-9)
    assert np.all(log["energy"] >= tank_params.min_energy)
    # the filter had to act: the tank touched its floor and updates were scaled back
    assert log["energy"].min() < tank_params.min_energy + 1e-3
    assert np.sum(log["scale"] < 1.0) > 100
    assert tank.total_overdraft == 0.0


def test_same_commands_without_the_filter_break_the_bound():
    """Control for the test above: unfiltered, the same commands inject more energy than the
    tank held plus everything the damper dissipated."""
    params = free_body_params(filter_alpha=0.2)
    ctrl = CartesianImpedanceController(params, 6)
    body = FreeBody()
    ctrl.reset(body.state())
    injected = dissipated = 0.0
    for pos, quat, stiffness in _adversarial_commands(np.random.default_rng(3), params, 5000, 50):
        tau, info = ctrl.step(body.state(), pos, quat, stiffness)
        injected += info["energy_nonpassive"]
        dissipated += info["power_dissipated"] * DT
        body.step(tau)
    assert injected > 0.3 - 0.05 + dissipated


def test_passivity_filter_scales_a_too_large_update():
    params = free_body_params(filter_alpha=1.0)
    pf = PassivityFilter(CartesianImpedanceController(params, 6),
                         EnergyTank(EnergyTankParams(initial_energy=0.06, min_energy=0.05)))
    body = FreeBody(pos=(0.005, 0.0, 0.0))
    pf.reset(FreeBody().state())
    pf.controller.step(body.state(), np.zeros(3), IDENTITY)   # reference at origin, no tank
    _, info = pf.step(body.state(), np.array([-0.003, 0, 0]), IDENTITY)
    requested = 2000 * 0.5 * (0.008 ** 2 - 0.005 ** 2)          # 0.039 J > 0.01 J available
    assert info["power_nonpassive_requested"] * DT == pytest.approx(requested, rel=1e-9)
    assert info["passivity_scale"] == pytest.approx(0.01 / requested, rel=1e-9)
    assert info["energy_nonpassive"] <= 0.01 + 1e-15
    assert pf.tank.energy >= 0.05
    assert -0.003 < pf.controller.reference_pos[0] < 0.0         # moved only part of the way


def test_passivity_filter_refuses_integral_term():
    with pytest.raises(ValueError, match="integral"):
        PassivityFilter(CartesianImpedanceController(
            free_body_params(integral_gain=(1.0,) * 6), 6), EnergyTank())


# ---------------------------------------------------------------- safety
def test_random_actions_stay_in_workspace_and_respect_max_step():
    params = SafetyParams()
    safety = SafetyLimits(params)
    rng = np.random.default_rng(4)
    n = 100_000
    low, high = params.workspace_low, params.workspace_high
    step_t, step_r = params.max_step_translation + 1e-12, params.max_step_rotation + 1e-9
    # mostly SERL-sized moves, every 100th a wild jump
    moves = rng.normal(0, 0.02, (n, 3)) * np.where(np.arange(n) % 100 == 0, 50.0, 1.0)[:, None]
    turns = [rotvec_to_quat(r) for r in rng.normal(0, 0.08, (n, 3))]
    target = [(lo + hi) / 2 for lo, hi in zip(low, high)] + [1.0, 0.0, 0.0, 0.0]
    safety.reset(target)
    clipped = 0
    for move, turn in zip(moves.tolist(), turns):
        proposed = [t + m for t, m in zip(target[:3], move)] + list(quat_multiply(turn, target[3:]))
        new = safety.clip_target(target, proposed).tolist()
        assert all(lo <= v <= hi for v, lo, hi in zip(new[:3], low, high))
        assert all(abs(v - t) <= step_t for v, t in zip(new[:3], target[:3]))
        assert all(abs(r) <= step_r for r in quat_error(new[3:], target[3:]))
        clipped += max(abs(a - b) for a, b in zip(new, proposed)) > 1e-12
        target = new
    assert clipped > 10_000


def test_orientation_box_and_position_only_targets():
    params = SafetyParams(orientation_reference=(1.0, 0.0, 0.0, 0.0),
                          orientation_limit=(0.2, 0.2, 0.5))
    safety = SafetyLimits(params)
    target = np.array([0.5, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0])
    for _ in range(20):     # keep pushing about x: stops at the 0.2 rad limit
        target = safety.clip_target(target, np.concatenate(
            [target[:3], quat_multiply(rotvec_to_quat((0.1, 0, 0)), target[3:])]))
    np.testing.assert_allclose(quat_to_rotvec(target[3:]), (0.2, 0, 0), atol=1e-9)
    position = safety.clip_target(np.array([0.5, 0.0, 0.3]), np.array([0.9, 0.0, 0.3]))
    np.testing.assert_allclose(position, [0.52, 0.0, 0.3])


def test_force_and_speed_thresholds_latch_a_hold():
    safety = SafetyLimits(SafetyParams())
    pose = np.array([0.5, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0])
    assert not safety.check(pose[:3], pose[3:], np.zeros(6), np.array([10.0, 0, 0, 0, 0, 0]))
    contact = np.array([0.51, 0.0, 0.29])
    assert safety.check(contact, IDENTITY, np.zeros(6), np.array([0.0, 70.0, 0.0]))
    assert "force" in safety.hold_reason and "max_force" in safety.hold_reason
    # latched: the target is the pose where it tripped, whatever the agent proposes
    held = safety.clip_target(pose, pose + 0.01)
    np.testing.assert_allclose(held, np.concatenate([contact, IDENTITY]))
    assert safety.check(contact, IDENTITY, np.zeros(6), np.zeros(3))
    safety.reset_hold()
    assert not safety.holding and safety.hold_reason is None
    assert safety.check(pose[:3], pose[3:], np.array([0.0, 0.0, 1.5, 0, 0, 0]), None)
    assert "linear speed" in safety.hold_reason
    safety.reset_hold()
    assert safety.check(pose[:3], pose[3:], np.array([0.0, 0.0, 0.0, 0, 0, 3.0]))
    assert "angular speed" in safety.hold_reason


# ---------------------------------------------------------------- bad input
def test_nan_setpoint_and_gain_are_held_with_reason():
    params = free_body_params(filter_alpha=0.5)
    ctrl = CartesianImpedanceController(params, 6)
    body = FreeBody()
    ctrl.reset(body.state())
    good = np.array([0.01, 0.0, 0.0])
    ctrl.step(body.state(), good, IDENTITY)
    assert np.allclose(ctrl.reference_pos, [0.005, 0, 0])
    bad_inputs = [
        (np.array([np.nan, 0, 0]), IDENTITY, None, "not finite"),
        (good, np.array([np.inf, 0, 0, 0]), None, "not finite"),
        (good, np.zeros(4), None, "norm"),
        (np.array([5.0, 0, 0]), IDENTITY, None, "max_target_distance"),
        (np.array([0.0, 0.0]), IDENTITY, None, "3 numbers"),
        (good, IDENTITY, [np.nan] * 6, "stiffness"),
        (good, IDENTITY, [1e6] * 6, "stiffness_max"),
        (good, IDENTITY, [2000.0] * 5, "stiffness"),
    ]
    expected_ref = 0.005
    for pos, quat, stiffness, reason in bad_inputs:
        tau, info = ctrl.step(body.state(), pos, quat, stiffness)
        assert info["rejected"] is not None and reason in info["rejected"]
        assert np.all(np.isfinite(tau))
        expected_ref += 0.5 * (0.01 - expected_ref)     # keeps filtering toward the held target
        np.testing.assert_allclose(ctrl.reference_pos, [expected_ref, 0, 0], rtol=1e-12)
        np.testing.assert_allclose(ctrl.stiffness, params.nominal_stiffness())
    # a NaN state repeats the last torque and changes nothing
    last_tau, ref_before = ctrl.torque, ctrl.reference_pos
    state = body.state()
    state.qd[2] = np.nan
    tau, info = ctrl.step(state, good, IDENTITY)
    assert "state not finite" in info["rejected"]
    np.testing.assert_array_equal(tau, last_tau)
    np.testing.assert_array_equal(ctrl.reference_pos, ref_before)
    # a NaN Jacobian entry paired with zero velocity is caught via the torque
    state = body.state()
    state.jacobian[0, 0] = np.nan
    tau, info = ctrl.step(state, good, IDENTITY)
    assert "state not finite" in info["rejected"]
    np.testing.assert_array_equal(tau, last_tau)
    # NaN dt
    tau, info = ctrl.step(body.state(), good, IDENTITY, dt=float("nan"))
    assert "dt" in info["rejected"]


def test_safety_rejects_nan_proposals_and_tank_ignores_nan_power():
    safety = SafetyLimits(SafetyParams())
    prev = np.array([0.5, 0.0, 0.3, 1.0, 0.0, 0.0, 0.0])
    out = safety.clip_target(prev, np.array([np.nan, 0, 0.3, 1, 0, 0, 0]))
    np.testing.assert_array_equal(out, prev)
    assert "finite" in safety.last_rejected
    assert safety.check(prev[:3], prev[3:], np.array([np.nan] * 6), None)
    assert "not finite" in safety.hold_reason
    pf = PassivityFilter(CartesianImpedanceController(free_body_params(), 6), EnergyTank())
    body = FreeBody()
    pf.reset(body.state())
    energy = pf.tank.energy
    _, info = pf.step(body.state(), np.array([np.nan] * 3), IDENTITY)
    assert info["rejected"] and pf.tank.energy >= energy - 1e-12


def test_bad_params_raise_clear_errors():
    with pytest.raises(ValueError, match="n_joints=3"):
        CartesianImpedanceController(ImpedanceParams(), 3)   # 7 Franka torque limits
    with pytest.raises(ValueError, match="filter_alpha"):
        ImpedanceParams(filter_alpha=1.5)
    with pytest.raises(ValueError, match="outside"):
        ImpedanceParams(translational_stiffness=10.0)
    with pytest.raises(ValueError, match="min_energy"):
        EnergyTankParams(initial_energy=0.01, min_energy=0.05)
    with pytest.raises(ValueError, match="workspace"):
        SafetyParams(workspace_low=(1, 0, 0), workspace_high=(0, 1, 1))
    ctrl = CartesianImpedanceController(ImpedanceParams(), 7)
    with pytest.raises(ValueError, match="jacobian"):
        ctrl.reset(ArmState(np.zeros(7), np.zeros(7), np.zeros(3), IDENTITY, np.zeros((7, 6))))


def test_hold_drops_the_spring_force_at_once_and_keeps_damping():
    """Regression: a force trip with the reference 2 cm away used to leave the spring pushing
    20 N at 100 ms (the held target went through the reference filter and the error clip)."""
    params = free_body_params(filter_alpha=0.01)
    for wrapped in (False, True):
        ctrl = CartesianImpedanceController(params, 6)
        pf = PassivityFilter(ctrl, EnergyTank()) if wrapped else ctrl
        body = FreeBody()
        pf.reset(body.state())
        target = np.array([0.02, 0.0, 0.0])
        for _ in range(300):                     # reference filters ~2 cm toward the target
            pf.step(body.state(), target, IDENTITY)
        assert np.linalg.norm(ctrl.reference_pos - body.pos) > 0.015
        body.vel[0] = 0.05
        safety = SafetyLimits(SafetyParams())
        assert safety.check(body.pos, body.quat, body.vel, np.array([80.0, 0.0, 0.0]))
        drawn = pf.tank.total_drawn if wrapped else None
        tank_before = pf.tank.energy if wrapped else None
        stored = storage(body.pos, body.quat, ctrl.reference_pos, ctrl.reference_quat,
                         ctrl.stiffness)
        released = pf.hold_at(body.state())
        assert released == pytest.approx(-stored, rel=1e-12) and stored > 0.1
        assert ctrl.holding
        if wrapped:   # returned into the tank, never drawn
            assert pf.tank.total_drawn == drawn
            assert pf.tank.energy == pytest.approx(min(tank_before - released, 2.0))
        spring = []
        for tick in range(300):
            # the caller keeps sending the old target: the latched hold ignores it
            tau, info = pf.step(body.state(), target, IDENTITY)
            spring.append(np.linalg.norm(ctrl.stiffness * info["clipped_error"]))
            if tick == 0:
                assert spring[0] == 0.0                              # exactly: ref = pose
                assert info["force"][0] == pytest.approx(-2 * math.sqrt(2000) * 0.05)  # damper
            body.step(tau)
        np.testing.assert_allclose(ctrl.reference_pos, safety.hold_target[:3])
        assert spring[100] < 0.5 and spring[299] < 0.5     # N (was 20 N and 8.9 N)
        pf.reset(body.state())
        assert not ctrl.holding
