"""Test-side reference of the impedance spring storage, written independently of
robo_rl.controllers (vectorised), so energy tests do not check the controller against itself."""
from __future__ import annotations

import numpy as np


def batch_storage(pos, quat, ref_pos, ref_quat, stiffness, clip=(0.01,) * 3 + (0.05,) * 3):
    """Independent, vectorised V(x; r) = sum K_i huber_{c_i}(e_i) over rows of (N, .) arrays."""
    w, v = quat[:, :1], quat[:, 1:]
    rw, rv = ref_quat[:, :1], ref_quat[:, 1:]
    err_w = w * rw + np.sum(v * rv, axis=1, keepdims=True)          # q * conj(r)
    err_v = rw * v - w * rv - np.cross(v, rv)
    err_v = np.where(err_w < 0, -err_v, err_v)
    sin_half = np.linalg.norm(err_v, axis=1, keepdims=True)
    angle = 2.0 * np.arctan2(sin_half, np.abs(err_w))
    factor = np.divide(angle, sin_half, out=np.full_like(angle, 2.0), where=sin_half > 0)
    error = np.abs(np.concatenate([pos - ref_pos, factor * err_v], axis=1))
    clip = np.asarray(clip)
    return np.sum(stiffness * np.where(error <= clip, 0.5 * error ** 2,
                                       clip * (error - 0.5 * clip)), axis=1)
