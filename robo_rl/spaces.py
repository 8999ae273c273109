"""Observation-space conventions shared by envs, replay and networks."""
from __future__ import annotations

import numpy as np

PIXELS_KEY = "pixels"  # dict observations: uint8 C x H x W frames (stacked)
STATE_KEY = "state"    # dict observations: float32 proprioception


def is_pixel_box(space) -> bool:
    """A uint8 C x H x W Box: what robo_rl treats as images (encoder, frame de-dup)."""
    return np.dtype(space.dtype) == np.uint8 and len(space.shape) == 3
