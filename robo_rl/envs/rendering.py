"""Offscreen-rendering setup shared by the MuJoCo backends.

MuJoCo and dm_control pick their OpenGL backend from MUJOCO_GL when they are first imported, so
`configure_mujoco_gl()` must run before either is imported (robo_rl.envs does it on import).
"""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Iterator

DEFAULT_MUJOCO_GL = "egl"  # headless, GPU-accelerated where a driver exists, Mesa otherwise

RENDERER_HELP = (
    "Install a headless OpenGL backend and select it before mujoco is imported: "
    "EGL (`apt-get install libegl1 libgl1-mesa-dri`, then MUJOCO_GL=egl) or "
    "OSMesa (`apt-get install libosmesa6`, then MUJOCO_GL=osmesa).")


def configure_mujoco_gl() -> str:
    """Set MUJOCO_GL to the default unless the user chose one; return the value in effect."""
    if "MUJOCO_GL" not in os.environ and "mujoco" in sys.modules:
        warnings.warn(
            "mujoco was imported before robo_rl.envs, so MUJOCO_GL is set too late for mujoco's "
            f"own renderer; import robo_rl.envs first or export MUJOCO_GL={DEFAULT_MUJOCO_GL}.",
            stacklevel=3)
    os.environ.setdefault("MUJOCO_GL", DEFAULT_MUJOCO_GL)
    return os.environ["MUJOCO_GL"]


@contextlib.contextmanager
def renderer_errors(what: str) -> Iterator[None]:
    """Turn a failure to create an OpenGL context into a RuntimeError that says how to fix it."""
    try:
        yield
    except Exception as error:  # EGL/OSMesa failures surface as many exception types
        raise RuntimeError(
            f"Could not create an offscreen renderer for {what} with "
            f"MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} ({type(error).__name__}: {error}). "
            f"{RENDERER_HELP}") from error


def set_fast_render_quality(model) -> None:
    """No multi-sample anti-aliasing and no shadow map for rendering contexts made after this call.

    Only visual settings change; the dynamics do not read them. Shadows and reflections are also
    switched off per scene by the renderers (they are scene flags, not model fields).
    """
    model.vis.quality.offsamples = 0
    model.vis.quality.shadowsize = 0


def ensure_offscreen_buffer(model, height: int, width: int) -> None:
    """Grow (never shrink) the offscreen framebuffer so a height x width viewport fits."""
    model.vis.global_.offwidth = max(int(model.vis.global_.offwidth), width)
    model.vis.global_.offheight = max(int(model.vis.global_.offheight), height)
