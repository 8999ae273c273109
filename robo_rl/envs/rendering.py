"""Offscreen-rendering setup shared by the MuJoCo backends.

MuJoCo and dm_control pick their OpenGL backend from MUJOCO_GL when they are first imported, so
`configure_mujoco_gl()` must run before either is imported (robo_rl.envs does it on import).
"""
from __future__ import annotations

import contextlib
import ctypes.util
import os
import platform
import sys
import warnings
from typing import Iterator

# Headless backends in order of preference on Linux, each with the shared library it loads:
# EGL (GPU where a driver exists, Mesa otherwise), then OSMesa (software only).
LINUX_BACKENDS = (("egl", "EGL"), ("osmesa", "OSMesa"))
DEFAULT_MUJOCO_GL = "egl"  # when neither library is found: the error at render time says why

RENDERER_HELP = (
    "Install a headless OpenGL backend and select it before mujoco is imported: "
    "EGL (`apt-get install libegl1 libgl1-mesa-dri`, then MUJOCO_GL=egl) or "
    "OSMesa (`apt-get install libosmesa6`, then MUJOCO_GL=osmesa).")


def configure_mujoco_gl() -> str | None:
    """On Linux set MUJOCO_GL to the first headless backend installed (egl, then osmesa)
    unless the user chose one; return the value in effect. Other systems keep MuJoCo's own
    default (MUJOCO_GL=egl is invalid there)."""
    if "MUJOCO_GL" in os.environ or platform.system() != "Linux":
        return os.environ.get("MUJOCO_GL")
    if "mujoco" in sys.modules:
        warnings.warn(
            "mujoco was imported before robo_rl.envs, so MUJOCO_GL is set too late for mujoco's "
            f"own renderer; import robo_rl.envs first or export MUJOCO_GL={DEFAULT_MUJOCO_GL}.",
            stacklevel=3)
    installed = [name for name, library in LINUX_BACKENDS if ctypes.util.find_library(library)]
    os.environ["MUJOCO_GL"] = installed[0] if installed else DEFAULT_MUJOCO_GL
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
