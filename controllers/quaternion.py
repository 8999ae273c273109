"""Unit-quaternion helpers, (w, x, y, z) order as MuJoCo uses.

Every function takes sequences of floats and returns tuples of Python floats: inside a 1 kHz
control tick a 4-element numpy operation costs more (~1 us of call overhead) than the scalar
arithmetic itself. Wrap results with ``np.asarray`` where an array is wanted.

Conventions:
- ``quat_multiply(a, b)`` is the Hamilton product: rotate by ``b`` first, then by ``a``.
- Orientation error ``quat_error(q, q_ref)`` is the rotation vector of ``q * q_ref^-1``: the
  rotation, expressed in the world frame, that carries ``q_ref`` onto ``q``. For a fixed
  ``q_ref`` its time derivative is the world angular velocity to first order, which is why the
  impedance law can pair it with the angular rows of a world-frame Jacobian.
"""

from __future__ import annotations

import math
from typing import Sequence

Quat = tuple[float, float, float, float]
Vec3 = tuple[float, float, float]

# Below this rotation angle (rad) the closed forms lose precision; the Taylor series is exact
# to double precision there (next term ~ theta^4 / 3840).
_SMALL_ANGLE = 1e-6
# Above this |dot| slerp falls back to a normalised lerp (sin(theta) ~ 0 would divide by ~0).
_SLERP_LINEAR_DOT = 1.0 - 1e-9


def quat_norm(q: Sequence[float]) -> float:
    w, x, y, z = q
    return math.sqrt(w * w + x * x + y * y + z * z)


def quat_normalize(q: Sequence[float]) -> Quat:
    """Unit quaternion with the same orientation; raises ValueError for a zero/non-finite one."""
    n = quat_norm(q)
    if not (n > 0.0 and math.isfinite(n)):
        raise ValueError(f"cannot normalise quaternion {tuple(q)}: norm is {n}; pass a non-zero, "
                         "finite (w, x, y, z)")
    w, x, y, z = q
    return (w / n, x / n, y / n, z / n)


def quat_conjugate(q: Sequence[float]) -> Quat:
    w, x, y, z = q
    return (w, -x, -y, -z)


def quat_multiply(a: Sequence[float], b: Sequence[float]) -> Quat:
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return (aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw)


def quat_to_rotvec(q: Sequence[float]) -> Vec3:
    """Rotation vector (axis * angle, angle in [0, pi]) of a unit quaternion (shortest path)."""
    w, x, y, z = q
    if w < 0.0:  # q and -q are the same rotation; take the one with angle <= pi
        w, x, y, z = -w, -x, -y, -z
    s = math.sqrt(x * x + y * y + z * z)
    # angle = 2 atan2(s, w); the factor angle / s tends to 2 / w as s -> 0 (identity: w = 1)
    factor = 2.0 * math.atan2(s, w) / s if s > 0.0 else 2.0
    return (factor * x, factor * y, factor * z)


def rotvec_to_quat(r: Sequence[float]) -> Quat:
    rx, ry, rz = r
    angle = math.sqrt(rx * rx + ry * ry + rz * rz)
    if angle < _SMALL_ANGLE:
        w = 1.0 - angle * angle / 8.0
        k = 0.5 - angle * angle / 48.0          # sin(angle / 2) / angle
    else:
        w = math.cos(0.5 * angle)
        k = math.sin(0.5 * angle) / angle
    return (w, k * rx, k * ry, k * rz)


def quat_error(q: Sequence[float], q_ref: Sequence[float]) -> Vec3:
    """Rotation vector of ``q * q_ref^-1`` (world frame); zero when q == +-q_ref."""
    w, x, y, z = q
    rw, rx, ry, rz = q_ref
    # q * conj(q_ref), written out to skip building the conjugate
    ew = w * rw + x * rx + y * ry + z * rz
    ex = -w * rx + x * rw - y * rz + z * ry
    ey = -w * ry + x * rz + y * rw - z * rx
    ez = -w * rz - x * ry + y * rx + z * rw
    return quat_to_rotvec((ew, ex, ey, ez))


def quat_slerp(q0: Sequence[float], q1: Sequence[float], t: float) -> Quat:
    """Spherical interpolation from q0 (t=0) to q1 (t=1) along the shortest arc."""
    w0, x0, y0, z0 = q0
    w1, x1, y1, z1 = q1
    dot = w0 * w1 + x0 * x1 + y0 * y1 + z0 * z1
    if dot < 0.0:
        w1, x1, y1, z1, dot = -w1, -x1, -y1, -z1, -dot
    if dot > _SLERP_LINEAR_DOT:
        a, b = 1.0 - t, t
    else:
        theta = math.acos(dot)
        inv_sin = 1.0 / math.sin(theta)
        a = math.sin((1.0 - t) * theta) * inv_sin
        b = math.sin(t * theta) * inv_sin
    w, x, y, z = a * w0 + b * w1, a * x0 + b * x1, a * y0 + b * y1, a * z0 + b * z1
    n = math.sqrt(w * w + x * x + y * y + z * z)
    return (w / n, x / n, y / n, z / n)
