"""Per-tick cost of the 1 kHz control stack (CPython + numpy), 7-joint arm.

    .venv/bin/python bench/control_tick.py [--ticks 20000]

Prints mean and p99 microseconds per tick for: the impedance law alone, + passivity filter
(energy tank; worst case, the random state pool keeps the tank at its floor, and with a tank
that never empties, the ordinary path), + safety (per-tick speed/force check and target clipping), against the 50 us
budget of a 1 kHz loop, and a named baseline measured in the same run: a straightforward numpy
transcription of the same law that builds the nullspace projector with np.linalg.pinv(J^T)
every tick (and uses np.clip / fresh arrays throughout).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

# A control loop runs single-threaded: threaded BLAS/LAPACK only adds hand-off latency on
# 6x7 matrices (and spikes the baseline's SVD). Set before numpy loads its BLAS.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from robo_rl.controllers import (  # noqa: E402
    ArmState, CartesianImpedanceController, EnergyTank, EnergyTankParams, ImpedanceParams, PassivityFilter,
    SafetyLimits, SafetyParams, quat_error, quat_slerp, rotvec_to_quat)

BUDGET_US = 50.0
N_JOINTS = 7
STATE_POOL = 256           # distinct states cycled through, so no tick sees a cached input


class NaivePinvImpedance:
    """Baseline: the same law written the obvious way (not used by robo_rl)."""

    def __init__(self, params: ImpedanceParams, state: ArmState):
        self.p = params
        self.ref_pos = state.ee_pos.astype(float).copy()
        self.ref_quat = state.ee_quat.astype(float).copy()
        self.stiffness = params.nominal_stiffness()
        self.clip = np.array([params.error_clip_translation] * 3 + [params.error_clip_rotation] * 3)
        self.q_ns = state.q.copy()
        self.tau = np.zeros(len(state.q))
        self.limit = np.broadcast_to(np.asarray(params.torque_limit, float), self.tau.shape)

    def step(self, state: ArmState, target_pos, target_quat, dt=0.001):
        p = self.p
        a = p.filter_gain(dt)
        self.ref_pos = self.ref_pos + a * (target_pos - self.ref_pos)
        self.ref_quat = np.array(quat_slerp(self.ref_quat, target_quat, a))
        damping = 2.0 * p.damping_ratio * np.sqrt(self.stiffness)
        error = np.concatenate([state.ee_pos - self.ref_pos,
                                np.array(quat_error(state.ee_quat, self.ref_quat))])
        jac = state.jacobian
        xdot = jac @ state.qd
        force = -self.stiffness * np.clip(error, -self.clip, self.clip) - damping * xdot
        projector = np.eye(jac.shape[1]) - jac.T @ np.linalg.pinv(jac.T)
        k_ns = p.nullspace_stiffness
        tau_ns = projector @ (k_ns * (self.q_ns - state.q) - 2.0 * np.sqrt(k_ns) * state.qd)
        tau_d = jac.T @ force + tau_ns + state.coriolis
        rate = p.max_torque_rate * dt
        tau = self.tau + np.clip(tau_d - self.tau, -rate, rate)
        self.tau = np.clip(tau, -self.limit, self.limit)
        return self.tau.copy()


def make_states(rng: np.random.Generator) -> list[ArmState]:
    home = np.array([0.5, 0.0, 0.3])
    states = []
    base_jac = rng.normal(0.0, 0.4, (6, N_JOINTS))
    for _ in range(STATE_POOL):
        states.append(ArmState(
            q=rng.uniform(-1.5, 1.5, N_JOINTS), qd=rng.normal(0.0, 0.2, N_JOINTS),
            ee_pos=home + rng.normal(0.0, 0.01, 3),
            ee_quat=np.array(rotvec_to_quat(rng.normal(0.0, 0.05, 3))),
            jacobian=base_jac + rng.normal(0.0, 0.02, (6, N_JOINTS)),
            coriolis=rng.normal(0.0, 0.5, N_JOINTS)))
    return states


def time_interleaved(ticks_by_name, states, ticks: int, rounds: int) -> dict[str, np.ndarray]:
    """Per-tick microseconds of each variant; variants take turns in ``rounds`` chunks so a
    busy shared machine slows them alike."""
    chunk = max(ticks // rounds, 1)
    samples = {name: [] for name in ticks_by_name}
    clock = time.perf_counter_ns
    for name, tick in ticks_by_name.items():      # warm-up
        for i in range(min(chunk, 1000)):
            tick(states[i % STATE_POOL], i)
    for round_index in range(rounds):
        for name, tick in ticks_by_name.items():
            times = np.empty(chunk)
            for j in range(chunk):
                i = round_index * chunk + j
                state = states[i % STATE_POOL]
                start = clock()
                tick(state, i)
                times[j] = clock() - start
            samples[name].append(times)
    return {name: np.concatenate(parts) / 1000.0 for name, parts in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    states = make_states(rng)
    params = ImpedanceParams()
    targets = [np.array([0.5, 0.0, 0.3]) + rng.normal(0.0, 0.02, 3) for _ in range(STATE_POOL)]
    target_quats = [np.array(rotvec_to_quat(rng.normal(0.0, 0.1, 3))) for _ in range(STATE_POOL)]

    ctrl = CartesianImpedanceController(params, N_JOINTS)
    ctrl.reset(states[0])
    pf = PassivityFilter(CartesianImpedanceController(params, N_JOINTS),
                         EnergyTank(EnergyTankParams()))
    pf.reset(states[0])
    # The state pool is not a trajectory: every tick the "plant" teleports, so the realized
    # excess the filter books is large and the tank sits at its floor, running the fallbacks
    # (least-power torque, spring release) nearly every tick: the worst case. A tank too large
    # to empty times the ordinary path, the one a physical trajectory takes almost always.
    pf_big = PassivityFilter(CartesianImpedanceController(params, N_JOINTS),
                             EnergyTank(EnergyTankParams(initial_energy=1e6, max_energy=1e6)))
    pf_big.reset(states[0])
    pf_safe = PassivityFilter(CartesianImpedanceController(params, N_JOINTS),
                              EnergyTank(EnergyTankParams()))
    pf_safe.reset(states[0])
    safety = SafetyLimits(SafetyParams())
    safe_target = np.concatenate([states[0].ee_pos, states[0].ee_quat])
    naive = NaivePinvImpedance(params, states[0])

    # the baseline computes the same torques (undamped vs damped pseudo-inverse aside)
    check = CartesianImpedanceController(params, N_JOINTS)
    check.reset(states[0])
    for i in range(50):
        fast_tau, _ = check.step(states[i], targets[i], target_quats[i])
        naive_tau = naive.step(states[i], targets[i], target_quats[i])
    agreement = float(np.max(np.abs(fast_tau - naive_tau)))
    naive = NaivePinvImpedance(params, states[0])

    def tick_naive(state, i):
        naive.step(state, targets[i % STATE_POOL], target_quats[i % STATE_POOL])

    def tick_impedance(state, i):
        ctrl.step(state, targets[i % STATE_POOL], target_quats[i % STATE_POOL])

    def tick_passive(state, i):
        pf.step(state, targets[i % STATE_POOL], target_quats[i % STATE_POOL])

    def tick_passive_ordinary(state, i):
        pf_big.step(state, targets[i % STATE_POOL], target_quats[i % STATE_POOL])

    def tick_full(state, i):
        nonlocal safe_target
        k = i % STATE_POOL
        safety.check(state.ee_pos, state.ee_quat, None, state.coriolis[:6])
        proposed = np.concatenate([targets[k], target_quats[k]])
        safe_target = safety.clip_target(safe_target, proposed)
        pf_safe.step(state, safe_target[:3], safe_target[3:])

    naive_name = "naive baseline (np.linalg.pinv per tick)"
    variants = {naive_name: tick_naive, "impedance": tick_impedance,
                "impedance + passivity": tick_passive,
                "impedance + passivity (tank never empty)": tick_passive_ordinary,
                "impedance + passivity + safety": tick_full}
    print(f"control tick, n={N_JOINTS} joints, {args.ticks} ticks each (interleaved in "
          f"{args.rounds} rounds), python {platform.python_version()}, numpy {np.__version__}, "
          f"{platform.machine()}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"budget {BUDGET_US:.0f} us per tick (1 kHz loop)")
    results = time_interleaved(variants, states, args.ticks, args.rounds)
    means = {}
    for name, samples in results.items():
        mean, median, p99 = samples.mean(), np.median(samples), np.percentile(samples, 99)
        means[name] = mean
        verdict = "within" if mean < BUDGET_US else "OVER"
        print(f"  {name:42s} mean {mean:6.1f}  median {median:6.1f}  p99 {p99:6.1f} us"
              f"   ({verdict} budget)")
    print(f"naive baseline / impedance (mean): {means[naive_name] / means['impedance']:.2f}x")
    print(f"naive baseline / full stack (mean): "
          f"{means[naive_name] / means['impedance + passivity + safety']:.2f}x")
    print(f"max |tau_fast - tau_naive| after 50 ticks: {agreement:.2e} Nm (damped vs plain pinv)")


if __name__ == "__main__":
    main()
