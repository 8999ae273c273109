"""Cartesian impedance control law (SERL-style), one pure step per control tick.

Law (all Cartesian quantities in the world frame, linear part first)::

    e      = (x - x_d, rotvec(q * q_d^-1))                 pose error, 6
    e_c    = clip(e, -c, c)                                per-axis clip (0.01 m, 0.05 rad)
    F      = -K e_c - D xdot - K_i e_int                   D = 2 zeta sqrt(K), xdot = J qd
    tau    = J^T F + (I - J^T J^T+)(k_ns (q_ns - q) - 2 sqrt(k_ns) qd) + coriolis
    J^T+   = (J J^T + lambda^2 I)^-1 J                     damped pseudo-inverse of J^T
    tau    <- rate-limit(tau, tau_prev), then clip to +-torque_limit

The reference (x_d, q_d) and the stiffness K are not the commanded target itself but its
low-pass filtered version (SERL filters at alpha = 0.005 per 1 kHz tick). To make the filter
independent of the tick length the per-tick gain is derived from the one specified at
``filter_alpha_dt``::

    a(dt) = 1 - (1 - alpha) ** (dt / filter_alpha_dt)

which is the exact discretisation of a first-order lag with time constant
tau_f = -filter_alpha_dt / ln(1 - alpha) (0.1995 s for the defaults): N ticks of dt equal N/2
ticks of 2 dt. Orientation is filtered with slerp by the same gain.

Energy bookkeeping (used by the passivity filter, see passivity.py). The spring is the
gradient of the storage function

    V(x; r) = sum_i K_i h_{c_i}(e_i),   h_c(e) = e^2/2 if |e| <= c else c (|e| - c/2)

(the Huber function, whose derivative is exactly clip(e, -c, c)), where r = (x_d, q_d, K) is
the filtered reference. For a fixed r the spring plus the damper -D xdot form a passive
element: the energy the spring hands to the robot is the drop of V, the damper removes
xdot^T D xdot >= 0. In continuous time, with F_s = -dV/de,

    F_s^T xdot = -dV/dt + (dV/dK) Kdot + F_s^T xdot_d

so the non-passive power is P_np = (dV/dK) Kdot + F_s^T xdot_d: raising K while stretched or
moving the set-point away injects energy (Ferraguti et al. 2013, variable-stiffness tank).
This controller uses the exact discrete counterpart: at tick k, with the robot at x_k, the
reference jumps from r_{k-1} to r_k and

    dE_np(k) = V(x_k; r_k) - V(x_k; r_{k-1})          ("power_nonpassive" = dE_np / dt)

Summing the spring work over ticks telescopes, sum_k [V(x_k; r_k) - V(x_{k+1}; r_k)] =
V(x_0; r_0) - V(x_N; r_{N-1}) + sum_k dE_np(k) <= V(x_0; r_0) + sum_k dE_np(k), so an energy
tank that pays every positive dE_np (and is refilled by at most what the damper dissipated)
bounds the energy the controller can ever hand to the robot -- if the torque that reaches the
robot were the spring + damper's. It is not (rate limit, torque limit, zero-order hold,
Coriolis feed-forward), and the rotational Huber spring on the world-frame rotation vector is
the potential of its torque only to first order in the error angle; so the tank also books
the *measured* excess of the applied torque, see "Applied torque" below. The integral term is
an active element and is off by default; PassivityFilter refuses to wrap a controller that
enables it.

Applied torque (why the storage jumps alone are not enough, and what the tank books instead).
The torque that reaches the joints is not the law's: it is rate-limited around the last command
(max_torque_rate, 1 Nm per 1 ms tick by default), clipped to torque_limit, held constant over
the tick (zero-order hold), and it carries the Coriolis feed-forward. Each of these does work
the spring/damper picture does not see: a lagging or saturated torque brakes less than the
spring "stores", so V later hands back energy the plant never gave (measured: a unit mass
pushed at 1 m/s into a fixed set-point, KE + V 0.500 -> 0.581 J with nothing drawn). The
Coriolis term is not work-free either: for the measured c = C(q, qd) qd, qd^T c =
(1/2) qd^T Mdot qd (Mdot - 2C is skew, not C), e.g. 0.1-1.6 W on the simulated Panda at
~1 rad/s joint speeds. Rather than model each element, the filter measures, with storage
S = V + T (spring + tank), the excess of every tick once it is over:

    X_k = tau_k . (q_{k+1} - q_k) + V(x_{k+1}; r_k) - V(x_k; r_k)        ("energy_excess")

tau_k is the torque this controller returned (after rate limit and clip) and is held over the
tick, so tau_k . (q_{k+1} - q_k) is exactly the work it did on the plant, for any integrator;
V is a function of the measured pose, so no potential/gradient approximation enters (the
rotational Huber spring is only approximately the potential of its torque; that only moves
energy between "spring" and "excess", the sum is measured). X_k is booked at tick k+1:
X > 0 drawn from the tank, X < 0 (dissipation: damper, joint friction seen through the port,
a torque that brakes more than the spring) refilled at refill_fraction. Summing, with the
reference jumps dE_np booked as before,

    W(0..N) + V(x_N; r_{N-1}) - V(x_0; r_{-1}) = sum X + sum dE_np = T_0 - T_N - discarded

so the energy delivered to the plant over any window is at most the tank level above its
floor at the window's start: W + dV <= T(i) - T_min. tests/test_plant_energy.py measures
exactly this on a free body and on the MuJoCo arm, production limits on.

X_k is only known after the tick, so the torque is chosen against a prediction: with the tank
level H left after booking X_{k-1} and dE_np,

    X_pred = tau . qd_ext dt + (grad V . xdot + (1/2) dt xdot^T K xdot) dt <= H

where qd_ext extrapolates the velocity over the coming tick from the last two (the held
torque acts on qd_{k+1}) and (1/2) xdot^T K xdot dt^2 bounds the Huber storage's second-order
term. If the rate-limited, clipped torque violates it, in this order:
  1. the torque moves along the segment toward the corner of its rate/limit box with the least
     power tau . qd_ext (the box is convex, so both limits keep holding), just far enough;
  2. if even the corner does not fit, the spring is released: the reference jumps to the
     measured pose (V -> 0, grad V = 0; the storage goes back into the tank as returned energy)
     and step 1 is repeated without the spring term;
  3. if still short (a torque lagging *along* a velocity an impact just reversed; the rate box
     cannot turn it fast enough), the torque is scaled toward zero until it fits. This leaves
     the rate box (never the torque limits); ``ImpedanceParams.passivity_over_rate_limit``
     False keeps the rate limit instead and leaves that energy unpaid (EnergyTank
     .total_overdraft counts it). info["rate_limit_overridden"] says when it happened
     (measured: 26 of 30,000 adversarial ticks on a unit-mass free body, 1 of 10^5 on the
     MuJoCo Panda with a 0.1 J tank; it only sheds torque. A robot driver with its own rate
     limiter, e.g. libfranka's, would undo it: the ROS 2 node must decide which limit wins).
When the realized X_{k-1} exceeds the tank (the prediction missed: an impact inside the tick,
third-order terms), the spring is released first and its storage pays; only what is left
after both would be overdraft (0 in the tests' 10^5 adversarial free-body ticks and 10^5
MuJoCo ticks). What remains approximate: q is the measured joint position (exact in
simulation; on hardware encoder resolution), the prediction (not the booking) assumes smooth
velocity, and a tick whose state is NaN (_hold_torque) books nothing for the ticks around it.

Given ``energy_limit`` (the tank's available energy), a reference update whose dE_np exceeds
it is scaled back: r(gamma) = r_{k-1} + gamma (r_k - r_{k-1}) (slerp for orientation) with
gamma = limit / dE_np first, halved until dE_np(gamma) <= limit (V is not convex in gamma when
the set-point and K move together), and gamma = 0 (hold the previous reference, dE_np = 0
exactly) as the last resort. So the delivered non-passive energy never exceeds the limit.

Safety hold: ``hold_at(state)`` jumps the reference and target to the measured pose (no filter,
no clip in the way: the spring force is zero on that tick), latches until reset() /
release_hold(), and keeps the damper and nullspace term. It only lowers V (to 0), so it is
passive; the released storage is reported (PassivityFilter returns it into the tank).

Bad input never raises mid-tick: a non-finite / mis-shaped / out-of-range target or stiffness
is ignored (the previous target is held) and ``info["rejected"]`` says why; a non-finite state
holds the previous torque command.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .quaternion import quat_error, quat_slerp
from .state import ArmState

# Halvings of the passivity scale gamma before falling back to gamma = 0 (holding the
# reference, which injects exactly zero energy). 2^-8 of an update is already negligible.
_MAX_PASSIVITY_BACKTRACKS = 8

FRANKA_TORQUE_LIMIT = (87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0)  # Nm, Franka Panda datasheet

try:
    # The LAPACK gesv gufunc that np.linalg.solve(A, b) calls for a 1-D b: same result, bit for
    # bit, without ~6 us of argument checks per tick. A singular system gives NaN (caught with
    # the torque's finiteness check) instead of LinAlgError. Private numpy module, hence the
    # fallback.
    from numpy.linalg._umath_linalg import solve1 as _solve_vector
except ImportError:  # pragma: no cover - numpy moved it
    def _solve_vector(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        try:
            return np.linalg.solve(a, b)
        except np.linalg.LinAlgError:
            return np.full(len(b), np.nan)


@dataclass
class ImpedanceParams:
    """Every number of the law. Defaults are SERL's real-robot (Franka, 1 kHz) values; a
    simulated arm with small link inertia may need softer gains (set them in the task config)."""

    translational_stiffness: float = 2000.0      # K_t, N/m
    rotational_stiffness: float = 150.0          # K_r, Nm/rad
    damping_ratio: float = 1.0                   # zeta in D = 2 zeta sqrt(K) (unit-mass convention)
    # Bounds for variable stiffness commands step(..., stiffness=...), per axis (x y z rx ry rz).
    # Chosen: 1/20 of the SERL default downwards, 2x upwards.
    stiffness_min: tuple[float, ...] = (100.0, 100.0, 100.0, 7.5, 7.5, 7.5)
    stiffness_max: tuple[float, ...] = (4000.0, 4000.0, 4000.0, 300.0, 300.0, 300.0)
    error_clip_translation: float = 0.01         # c_t, m: spring force <= K_t c_t per axis
    error_clip_rotation: float = 0.05            # c_r, rad
    # Integral term K_i * int(e_c dt); off by default. |int(e_c dt)| is clamped per axis.
    integral_gain: tuple[float, ...] = (0.0,) * 6            # N/(m s), Nm/(rad s)
    integral_limit: tuple[float, ...] = (0.01,) * 6          # m s, rad s
    # Nullspace posture spring k_ns (q_ns - q) - 2 sqrt(k_ns) qd; q_ns = q at reset unless given.
    nullspace_stiffness: float = 0.5             # Nm/rad (weak: it only resolves redundancy)
    nullspace_posture: tuple[float, ...] | None = None
    pinv_damping: float = 0.01                   # lambda of the damped pseudo-inverse
    filter_alpha: float = 0.005                  # reference/gain low-pass gain per filter_alpha_dt
    filter_alpha_dt: float = 0.001               # s, the tick length alpha is specified at
    max_torque_rate: float | tuple[float, ...] = 1000.0   # Nm/s per joint (= 1 Nm per 1 ms tick)
    torque_limit: float | tuple[float, ...] = FRANKA_TORQUE_LIMIT   # Nm per joint
    # With an energy tank: when even the least-power torque of the rate box would deliver
    # energy the tank does not hold (a lagging torque along a velocity an impact reversed),
    # scale it toward zero torque, leaving the rate box (never the torque limits). False keeps
    # the rate limit and leaves the shortfall unpaid (counted in EnergyTank.total_overdraft).
    passivity_over_rate_limit: bool = True
    control_dt: float = 0.001                    # s, tick length used when step() gets no dt
    max_target_distance: float = 1.0             # m; farther targets are rejected (unit bugs)
    quat_norm_tolerance: float = 0.1             # | |q| - 1 | above this rejects a target quat

    def __post_init__(self):
        positive = {"translational_stiffness": self.translational_stiffness,
                    "rotational_stiffness": self.rotational_stiffness,
                    "error_clip_translation": self.error_clip_translation,
                    "error_clip_rotation": self.error_clip_rotation,
                    "filter_alpha": self.filter_alpha, "filter_alpha_dt": self.filter_alpha_dt,
                    "control_dt": self.control_dt, "max_target_distance": self.max_target_distance,
                    "quat_norm_tolerance": self.quat_norm_tolerance}
        for name, value in positive.items():
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"ImpedanceParams.{name}={value} must be finite and > 0")
        if self.filter_alpha > 1.0:
            raise ValueError(f"ImpedanceParams.filter_alpha={self.filter_alpha} must be in (0, 1] "
                             "(1 disables the reference filter)")
        if not (math.isfinite(self.pinv_damping) and self.pinv_damping > 0.0):
            raise ValueError(f"ImpedanceParams.pinv_damping={self.pinv_damping} must be finite "
                             "and > 0: it keeps J J^T + lambda^2 I invertible at singularities")
        for name in ("damping_ratio", "nullspace_stiffness"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"ImpedanceParams.{name}={value} must be finite and >= 0")
        for name in ("stiffness_min", "stiffness_max", "integral_gain", "integral_limit"):
            value = np.asarray(getattr(self, name), dtype=float)
            if value.shape != (6,) or not np.all(np.isfinite(value)) or np.any(value < 0):
                raise ValueError(f"ImpedanceParams.{name}={getattr(self, name)} must be 6 finite "
                                 "values >= 0, one per axis (x y z rx ry rz)")
        nominal = self.nominal_stiffness()
        if np.any(np.asarray(self.stiffness_min) > nominal) or np.any(
                np.asarray(self.stiffness_max) < nominal):
            raise ValueError(f"nominal stiffness {nominal.tolist()} lies outside [stiffness_min, "
                             f"stiffness_max] = [{self.stiffness_min}, {self.stiffness_max}]; "
                             "widen the bounds or change the stiffness")

    def nominal_stiffness(self) -> np.ndarray:
        return np.array([self.translational_stiffness] * 3 + [self.rotational_stiffness] * 3)

    def filter_gain(self, dt: float) -> float:
        """Per-tick filter gain a(dt) = 1 - (1 - alpha)^(dt / filter_alpha_dt)."""
        return 1.0 - (1.0 - self.filter_alpha) ** (dt / self.filter_alpha_dt)


def _per_joint(value, n_joints: int, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=float)
    if array.ndim == 0:
        array = np.full(n_joints, float(array))
    if array.shape != (n_joints,) or not np.all(np.isfinite(array)) or np.any(array <= 0):
        raise ValueError(f"ImpedanceParams.{name}={value} does not fit n_joints={n_joints}: give "
                         f"one positive number or {n_joints} (the default is the 7-joint Franka's)")
    return array


def huber_storage(error: Sequence[float], stiffness: Sequence[float],
                  clip: Sequence[float]) -> float:
    """V = sum_i K_i h_{c_i}(e_i): the potential whose gradient is K clip(e, -c, c)."""
    energy = 0.0
    for e, k, c in zip(error, stiffness, clip):
        a = abs(e)
        energy += k * (0.5 * a * a if a <= c else c * (a - 0.5 * c))
    return energy


class CartesianImpedanceController:
    """SERL-style Cartesian impedance controller; see the module docstring for the law.

    State kept between ticks: filtered reference pose and stiffness, commanded target and
    target stiffness, integral of the clipped error, last torque (for the rate limit).
    """

    def __init__(self, params: ImpedanceParams | None = None, n_joints: int = 7):
        self.params = params = params if params is not None else ImpedanceParams()
        if not (isinstance(n_joints, (int, np.integer)) and n_joints >= 1):
            raise ValueError(f"n_joints={n_joints} must be a positive integer")
        self.n_joints = n = int(n_joints)
        self._torque_limit = _per_joint(params.torque_limit, n, "torque_limit")
        self._torque_rate = _per_joint(params.max_torque_rate, n, "max_torque_rate")
        self._torque_limit_list = self._torque_limit.tolist()
        if params.nullspace_posture is not None and len(params.nullspace_posture) != n:
            raise ValueError(f"ImpedanceParams.nullspace_posture has {len(params.nullspace_posture)}"
                             f" entries, expected n_joints={n}")
        self._k_min = [float(v) for v in params.stiffness_min]
        self._k_max = [float(v) for v in params.stiffness_max]
        self._k_nominal = params.nominal_stiffness().tolist()
        self._clip = [params.error_clip_translation] * 3 + [params.error_clip_rotation] * 3
        self._k_int = [float(v) for v in params.integral_gain]
        self._int_limit = [float(v) for v in params.integral_limit]
        self.integral_enabled = any(k > 0.0 for k in self._k_int)
        self._two_zeta = 2.0 * params.damping_ratio
        self._k_ns = float(params.nullspace_stiffness)
        self._d_ns = 2.0 * math.sqrt(self._k_ns)
        self._damping_eye = (params.pinv_damping ** 2) * np.eye(6)
        self._dt_cache = (None, 0.0, None)   # (dt, filter gain, per-joint torque step)
        self._holding = False
        self._initialised = False

    # ------------------------------------------------------------------ state
    def reset(self, state: ArmState, nullspace_posture: Sequence[float] | None = None) -> None:
        """Reference := current pose, stiffness := nominal, integral := 0, torque memory := 0."""
        state.validate(self.n_joints)
        self._ref_pos = [float(v) for v in state.ee_pos]
        self._ref_quat = _unit_or_identity(state.ee_quat)
        self._target_pos = list(self._ref_pos)
        self._target_quat = self._ref_quat
        self._stiffness = list(self._k_nominal)
        self._target_stiffness = list(self._k_nominal)
        self._integral = [0.0] * 6
        self._tau_list = [0.0] * self.n_joints   # last commanded torque
        self._v_start = None     # V(x_{k-1}; r_{k-1}) of the last tick (None: nothing to book)
        self._qd_prev = self._q_prev = None
        self._last_dt = 0.0
        self._holding = False
        posture = (nullspace_posture if nullspace_posture is not None
                   else self.params.nullspace_posture if self.params.nullspace_posture is not None
                   else state.q)
        self._q_ns = np.array(posture, dtype=float)
        if self._q_ns.shape != (self.n_joints,):
            raise ValueError(f"nullspace posture has shape {self._q_ns.shape}, expected "
                             f"({self.n_joints},)")
        self._initialised = True

    @property
    def reference_pos(self) -> np.ndarray:
        return np.array(self._ref_pos)

    @property
    def reference_quat(self) -> np.ndarray:
        return np.array(self._ref_quat)

    @property
    def stiffness(self) -> np.ndarray:
        """Filtered (effective) stiffness, 6."""
        return np.array(self._stiffness)

    @property
    def damping(self) -> np.ndarray:
        return self._two_zeta * np.sqrt(self.stiffness)

    @property
    def target_stiffness(self) -> np.ndarray:
        return np.array(self._target_stiffness)

    @property
    def torque(self) -> np.ndarray:
        """Last commanded torque."""
        return np.array(self._tau_list)

    @property
    def holding(self) -> bool:
        """True after hold_at() until reset() or release_hold()."""
        return self._holding

    def hold_at(self, state: ArmState) -> float:
        """Safety hold: the reference (and target) jump to the measured pose of ``state`` and
        latch there; later targets and stiffness commands are ignored until reset() or
        release_hold(). The spring force drops to zero at once (no filter, no clip in the
        way); the damper and the nullspace term keep acting. Call it with the state of the tick
        about to be stepped (before step()). Passive: the storage goes from V(x; r) to 0, so
        the jump only removes energy; returns that change (-V <= 0, J). The realized-excess
        bookkeeping of the tick in progress is shifted by the same amount, so the next step
        still books that tick's work against the reference it ran with."""
        if not self._initialised:
            self.reset(state)
        pos = [float(v) for v in state.ee_pos]
        quat = tuple(float(v) for v in state.ee_quat)
        if not math.isfinite(sum(pos) + sum(quat)):   # cannot hold a NaN pose: hold the reference
            pos, quat = list(self._ref_pos), self._ref_quat
        else:
            quat = _unit_or_identity(quat)
        released = huber_storage(self._pose_error(pos, quat, self._ref_pos, self._ref_quat),
                                 self._stiffness, self._clip)
        self._ref_pos, self._ref_quat = list(pos), quat
        self._target_pos, self._target_quat = list(pos), quat
        self._target_stiffness = list(self._stiffness)
        self._integral = [0.0] * 6
        if self._v_start is not None:
            self._v_start -= released
        self._holding = True
        return -released

    def release_hold(self) -> None:
        """Accept targets again (the reference stays at the hold pose and filters from there)."""
        self._holding = False

    def storage(self, ee_pos: Sequence[float], ee_quat: Sequence[float]) -> float:
        """Spring storage V(x; r) at the given pose for the current reference r."""
        return huber_storage(self._pose_error(ee_pos, ee_quat, self._ref_pos, self._ref_quat),
                             self._stiffness, self._clip)

    # ------------------------------------------------------------------ tick
    def step(self, state: ArmState, target_pos, target_quat, stiffness=None,
             dt: float | None = None, energy_limit: float | None = None, tank=None):
        """One control tick -> (tau (n,), info).

        target_pos (3,), target_quat (w,x,y,z): commanded pose (filtered before use).
        stiffness: None keeps the last commanded stiffness, else 6 values in
            [stiffness_min, stiffness_max] (damping follows: D = 2 zeta sqrt(K)).
        dt: tick length in s (default params.control_dt).
        energy_limit: at most this much energy (J) may be injected by this tick's reference /
            stiffness update (ignored when ``tank`` is given).
        tank: an EnergyTank (the PassivityFilter passes its own). The tick then books into it,
            in this order: the realized excess of the previous tick, the reference jump of this
            one (scaled to what the tank holds), and it chooses the applied torque inside the
            rate/limit box so that the predicted excess of this tick fits what is left (module
            docstring, "Applied torque").
        info: force (commanded wrench, 6), clipped_error (6), power_nonpassive (W, applied),
            energy_nonpassive (J, applied), power_nonpassive_requested (W, before scaling),
            power_dissipated (W, xdot^T D xdot, predicted), passivity_scale (gamma in [0,1]),
            energy_excess (J, realized excess of the previous tick: applied-torque work plus
            spring storage change, > 0 = energy the controller delivered beyond its spring),
            torque_scale (1, or < 1 where the tank made the torque move toward the
            least-power corner of its box), holding (a hold_at latch is on),
            rejected (None or the reason the command or state was ignored).
        """
        if not self._initialised:
            self.reset(state)
        if dt is None:
            dt = self.params.control_dt
        if not 0.0 < dt < math.inf:  # also False for NaN
            return self._hold_torque(f"dt={dt!r} must be a finite number > 0 (seconds)")

        ee_pos = state.ee_pos.tolist()
        ee_quat = state.ee_quat.tolist()
        xdot = state.ee_velocity().tolist()
        # One sum catches NaN/inf anywhere in the Cartesian part of the state.
        if not math.isfinite(sum(ee_pos) + sum(ee_quat) + sum(xdot)):
            return self._hold_torque("state not finite (ee_pos, ee_quat, or ee velocity / "
                                     "jacobian @ qd has NaN/inf)")
        rejected = (self._accept_command(target_pos, target_quat, stiffness, ee_pos)
                    if not self._holding else None)

        # --- realized excess of the previous tick (module docstring, "Applied torque"):
        # work of the torque held over it, tau_{k-1} . (q_k - q_{k-1}) (exact for a held
        # torque, whatever the integrator), plus the change of the spring storage over the
        # motion, V(x_k; r_{k-1}) - V(x_{k-1}; r_{k-1}).
        clip = self._clip
        ref_pos, ref_quat, ref_k = self._ref_pos, self._ref_quat, self._stiffness
        storage_prev = huber_storage(self._pose_error(ee_pos, ee_quat, ref_pos, ref_quat),
                                     ref_k, clip)
        qd = state.qd.tolist()
        q = state.q.tolist()
        excess = released = 0.0
        if self._v_start is not None:
            work = 0.0
            for t, a, b in zip(self._tau_list, q, self._q_prev):
                work += t * (a - b)
            excess = work + storage_prev - self._v_start
            if not math.isfinite(excess):
                excess = 0.0
        if tank is not None:
            if excess > tank.available_energy and storage_prev > 0.0:
                # the last tick delivered more than predicted (an impact within the tick, or
                # the O(dt^2) zero-order-hold terms) and the tank cannot pay it all: release
                # the spring (reference := measured pose) and pay with its storage first
                released = storage_prev
                tank.exchange(-released, 0.0)
                ref_pos, ref_quat = list(ee_pos), _unit_or_identity(ee_quat)
                storage_prev = 0.0
            if excess > 0.0:
                tank.exchange(excess, 0.0)
            elif excess < 0.0:
                tank.exchange(0.0, -excess)
            energy_limit = tank.available_energy

        # --- filtered reference candidate: r_k = r_{k-1} + a (target - r_{k-1})
        if dt != self._dt_cache[0]:
            self._dt_cache = (dt, self.params.filter_gain(dt), (self._torque_rate * dt).tolist())
        _, a, torque_step = self._dt_cache
        cand_pos = [r + a * (t - r) for r, t in zip(ref_pos, self._target_pos)]
        cand_quat = quat_slerp(ref_quat, self._target_quat, a)
        cand_k = [k + a * (t - k) for k, t in zip(ref_k, self._target_stiffness)]

        # --- non-passive energy of the update at the current pose (module docstring)
        error = self._pose_error(ee_pos, ee_quat, cand_pos, cand_quat)
        energy_requested = huber_storage(error, cand_k, clip) - storage_prev
        energy, gamma = energy_requested, 1.0
        if energy_limit is not None and energy_requested > energy_limit:
            limit = max(energy_limit, 0.0)
            gamma = limit / energy_requested
            for _ in range(_MAX_PASSIVITY_BACKTRACKS):
                pos = [r + gamma * (c - r) for r, c in zip(ref_pos, cand_pos)]
                quat = quat_slerp(ref_quat, cand_quat, gamma)
                k_scaled = [r + gamma * (c - r) for r, c in zip(ref_k, cand_k)]
                err = self._pose_error(ee_pos, ee_quat, pos, quat)
                energy = huber_storage(err, k_scaled, clip) - storage_prev
                if energy <= limit:
                    break
                gamma *= 0.5
            else:
                gamma = 0.0
            if gamma > 0.0:
                cand_pos, cand_quat, cand_k, error = pos, quat, k_scaled, err
            else:  # hold the previous reference: injects exactly zero energy
                cand_pos, cand_quat, cand_k = ref_pos, ref_quat, ref_k
                error = self._pose_error(ee_pos, ee_quat, ref_pos, ref_quat)
                energy = 0.0

        torque_budget = None
        if tank is not None:
            if energy != 0.0:
                tank.exchange(energy, 0.0)     # a negative jump is handed back into the tank
            torque_budget = tank.available_energy

        # --- Cartesian wrench F = -K e_c - D xdot - K_i e_int
        two_zeta, sqrt = self._two_zeta, math.sqrt
        clipped, wrench, power_dissipated, spring_power, curvature = [], [], 0.0, 0.0, 0.0
        for e, c, k, v in zip(error, clip, cand_k, xdot):
            e = c if e > c else -c if e < -c else e
            d = two_zeta * sqrt(k)                     # critically damped for zeta = 1
            clipped.append(e)
            wrench.append(-k * e - d * v)
            power_dissipated += d * v * v
            spring_power += k * e * v                  # dV/dt = grad V . xdot
            curvature += k * v * v
        integral = self._integral
        if self.integral_enabled:
            integral = [min(max(i + e * dt, -lim), lim)
                        for i, e, lim in zip(integral, clipped, self._int_limit)]
            wrench = [w - ki * i for w, ki, i in zip(wrench, self._k_int, integral)]
        force = np.array(wrench)

        # --- joint torques: tau = J^T F + (I - J^T J^T+) tau0 + coriolis
        jac = state.jacobian
        jac_t = jac.T
        if self._k_ns > 0.0:
            tau0 = self._q_ns - state.q
            tau0 *= self._k_ns
            tau0 -= self._d_ns * state.qd
            # J^T+ tau0 = (J J^T + lambda^2 I)^-1 J tau0: one 6x6 solve, no 7x7 pseudo-inverse;
            # then J^T F + tau0 - J^T (J^T+ tau0) = J^T (F - J^T+ tau0) + tau0
            gram = np.dot(jac, jac_t)
            gram += self._damping_eye
            # singular only for absurd (~1e150) Jacobian entries: NaN, a RuntimeWarning, and
            # the finiteness check below holds the torque (np.errstate would cost ~3 us a tick)
            weights = _solve_vector(gram, np.dot(jac, tau0))
            tau = np.dot(jac_t, force - weights)
            tau += tau0
        else:
            tau = np.dot(jac_t, force)
        if state.coriolis is not None:
            tau += state.coriolis
        desired = tau.tolist()
        if not math.isfinite(sum(desired)):
            return self._hold_torque("state not finite (q, qd, jacobian or coriolis has NaN/inf), "
                                     "or J J^T + lambda^2 I not invertible (Jacobian entries "
                                     "absurdly large? raise ImpedanceParams.pinv_damping)")
        # rate limit around the last command, then the absolute limit; the second clip keeps the
        # rate bound because the last command lies within the limits. Seven Python floats are
        # cheaper here than six numpy calls, and conditional expressions than min/max calls.
        torque = []
        for t, p, s, lim in zip(desired, self._tau_list, torque_step, self._torque_limit_list):
            t = p - s if t < p - s else p + s if t > p + s else t
            torque.append(-lim if t < -lim else lim if t > lim else t)

        # --- applied-torque passivity: predicted excess of this tick
        #     X_pred = (tau . qd + grad V . xdot) dt  must fit what the tank holds
        torque_scale, rate_overridden, dropped = 1.0, False, 0.0
        if torque_budget is not None:
            # velocity over the coming tick, extrapolated from the last two (the work of the
            # held torque is tau . qd_{k+1} dt); spring term grad V . xdot + (1/2) xdot^T K xdot
            # dt, the Huber storage's curvature bound for the zero-order hold
            prev = self._qd_prev
            spring_power += 0.5 * dt * curvature
            power = spring_power
            if prev is not None:
                ratio = dt / self._last_dt
                for t, v, p in zip(torque, qd, prev):
                    power += t * (v + ratio * (v - p))
            else:
                for t, v in zip(torque, qd):
                    power += t * v
            predicted = power * dt
            if predicted > torque_budget:
                velocity = (qd if prev is None else
                            [v + ratio * (v - p) for v, p in zip(qd, prev)])
                boxed = torque
                torque, torque_scale, short = self._least_power_torque(
                    boxed, velocity, torque_step, spring_power, dt, predicted, torque_budget)
                if short:
                    # even the least-power torque of the box delivers more than the tank
                    # holds (saturation or a lagging rate limit while the spring stores):
                    # release the spring, i.e. the reference jumps to the measured pose. The
                    # storage V(x_k; r_k) goes back into the tank and grad V = 0 this tick.
                    dropped = storage_prev + energy
                    tank.exchange(-dropped, 0.0)
                    energy -= dropped
                    cand_pos = list(ee_pos)
                    cand_quat = _unit_or_identity(ee_quat)
                    power = 0.0
                    for t, v in zip(boxed, velocity):
                        power += t * v
                    limit = tank.available_energy
                    torque, torque_scale, short = self._least_power_torque(
                        boxed, velocity, torque_step, 0.0, dt, power * dt, limit)
                    if short and self.params.passivity_over_rate_limit:
                        # still short: the torque lags along the motion faster than the rate
                        # limit lets it turn (an impact reversed the velocity). Scale the
                        # least-power corner toward zero torque (inside the torque limits,
                        # outside the rate box) until it fits: tau . qd shrinks linearly.
                        power = 0.0
                        for t, v in zip(torque, velocity):
                            power += t * v
                        keep = limit / (power * dt)
                        torque = [t * keep for t in torque]
                        rate_overridden = True

        # --- commit
        self._ref_pos, self._ref_quat, self._stiffness = cand_pos, cand_quat, cand_k
        self._integral = integral
        self._tau_list = torque
        self._qd_prev, self._q_prev = qd, q
        self._v_start = storage_prev + energy           # V(x_k; r_k)
        self._last_dt = dt
        energy += dropped                               # the reference update's own jump
        released += dropped                             # spring storage handed back
        info = {"force": force, "clipped_error": np.array(clipped),
                "power_nonpassive": energy / dt, "energy_nonpassive": energy,
                "power_nonpassive_requested": energy_requested / dt,
                "power_dissipated": power_dissipated, "passivity_scale": gamma,
                "energy_excess": excess, "energy_released": released,
                "torque_scale": torque_scale,
                "rate_limit_overridden": rate_overridden,
                "holding": self._holding, "rejected": rejected}
        return np.array(torque), info

    def _least_power_torque(self, torque, qd, torque_step, spring_power, dt, predicted, limit):
        """Move the torque along the segment toward the corner of its rate/limit box with the
        least power tau . qd until the predicted excess fits ``limit``; the segment stays in the
        (convex) box, so rate and torque limits keep holding.
        -> (torque, fraction of the move not taken, whether even the corner does not fit)."""
        corner = []
        corner_power = spring_power
        for p, s, lim, v in zip(self._tau_list, torque_step, self._torque_limit_list, qd):
            lo, hi = p - s, p + s
            lo = -lim if lo < -lim else lo
            hi = lim if hi > lim else hi
            c = lo if v > 0.0 else hi if v < 0.0 else p
            c = -lim if c < -lim else lim if c > lim else c
            corner.append(c)
            corner_power += c * v
        corner_predicted = corner_power * dt
        if not predicted > limit:
            return torque, 1.0, False
        if not corner_predicted < predicted:
            return torque, 1.0, True
        lam = (predicted - limit) / (predicted - corner_predicted)
        if lam >= 1.0:
            return corner, 0.0, corner_predicted > limit
        return [t + lam * (c - t) for t, c in zip(torque, corner)], 1.0 - lam, False

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _pose_error(ee_pos, ee_quat, ref_pos, ref_quat) -> list[float]:
        rx, ry, rz = quat_error(ee_quat, ref_quat)
        return [ee_pos[0] - ref_pos[0], ee_pos[1] - ref_pos[1], ee_pos[2] - ref_pos[2], rx, ry, rz]

    def _accept_command(self, target_pos, target_quat, stiffness, ee_pos) -> str | None:
        """Store the command if it is valid; otherwise keep the last one and return why not."""
        try:
            px, py, pz = (target_pos.tolist() if isinstance(target_pos, np.ndarray)
                          else target_pos)
            qw, qx, qy, qz = (target_quat.tolist() if isinstance(target_quat, np.ndarray)
                              else target_quat)
            px, py, pz, qw, qx, qy, qz = (float(px), float(py), float(pz), float(qw), float(qx),
                                          float(qy), float(qz))
        except (TypeError, ValueError):
            return ("target_pos must be 3 numbers and target_quat 4 numbers (w, x, y, z); "
                    "holding the last target")
        if not math.isfinite(px + py + pz + qw + qx + qy + qz):
            return "target pose not finite (NaN/inf); holding the last target"
        norm = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
        if abs(norm - 1.0) > self.params.quat_norm_tolerance:
            return (f"target_quat norm {norm:.3g} is not ~1 (tolerance "
                    f"{self.params.quat_norm_tolerance}); holding the last target")
        distance = math.sqrt((px - ee_pos[0]) ** 2 + (py - ee_pos[1]) ** 2 + (pz - ee_pos[2]) ** 2)
        if distance > self.params.max_target_distance:
            return (f"target_pos is {distance:.3g} m from the end effector (max_target_distance "
                    f"{self.params.max_target_distance} m; metres expected); holding the last target")
        if stiffness is not None:
            try:
                k = (stiffness.tolist() if isinstance(stiffness, np.ndarray) else
                     [float(v) for v in stiffness])
                ok = len(k) == 6 and all(lo <= float(v) <= hi  # False for NaN
                                         for v, lo, hi in zip(k, self._k_min, self._k_max))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                return (f"stiffness {stiffness!r} rejected: need 6 finite values within "
                        f"[stiffness_min, stiffness_max] = [{list(self._k_min)}, "
                        f"{list(self._k_max)}]; holding the last command")
            self._target_stiffness = [float(v) for v in k]
        self._target_pos = [px, py, pz]
        self._target_quat = (qw / norm, qx / norm, qy / norm, qz / norm)
        return None

    def _hold_torque(self, reason: str):
        """Unusable tick: repeat the last torque; reference, stiffness and integral unchanged."""
        zero6 = np.zeros(6)
        info = {"force": zero6, "clipped_error": zero6.copy(), "power_nonpassive": 0.0,
                "energy_nonpassive": 0.0, "power_nonpassive_requested": 0.0,
                "power_dissipated": 0.0, "passivity_scale": 0.0, "energy_excess": 0.0,
                "energy_released": 0.0,
                "torque_scale": 1.0, "rate_limit_overridden": False, "holding": self._holding,
                "rejected": reason}
        # the pose is unusable, so the work of the tick that ends here and of the one that
        # starts cannot be booked (documented gap; a NaN state is a fault, not control)
        self._v_start = self._qd_prev = None
        return np.array(self._tau_list), info


def _unit_or_identity(q) -> tuple[float, float, float, float]:
    w, x, y, z = (float(v) for v in q)
    n = math.sqrt(w * w + x * x + y * y + z * z)
    if not (n > 0.0 and math.isfinite(n)):
        raise ValueError(f"ArmState.ee_quat={tuple(q)} is not a usable quaternion at reset; "
                         "pass the measured (w, x, y, z) orientation")
    return (w / n, x / n, y / n, z / n)
