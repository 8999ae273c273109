"""Render a picture of every arm task into docs/img/task_<name>.png (front | wrist camera).

    MUJOCO_GL=egl python scripts/render_tasks.py [--size 400] [--steps 8] [--out docs/img]

Each picture is taken after `--steps` policy steps of the task's scripted policy from a
fixed seed, with shadows and multisampling on (the tasks' own renders leave them off for speed).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from robo_rl.tasks import TASKS, make_task, scripted_policy  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PRETTY_MULTISAMPLES = 4   # MSAA samples for the documentation pictures


def render_task(name: str, size: int, steps: int, seed: int) -> np.ndarray:
    env = make_task(name, seed=seed)
    env.model.vis.quality.offsamples = PRETTY_MULTISAMPLES
    env.model.light_castshadow[:] = 1
    env.reset()
    for _ in range(steps):
        env.step(scripted_policy(env))
    views = [env.render_pixels(camera=camera, size=size) for camera in ("front", "wrist")]
    env.close()
    return np.concatenate(views, axis=2).transpose(1, 2, 0)  # H x 2W x 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=400, help="pixels per camera view")
    parser.add_argument("--steps", type=int, default=8, help="scripted steps before the picture")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    args = parser.parse_args()
    import cv2  # opencv-python-headless, a project dependency

    args.out.mkdir(parents=True, exist_ok=True)
    for name in TASKS:
        image = render_task(name, args.size, args.steps, args.seed)
        path = args.out / f"task_{name}.png"
        cv2.imwrite(str(path), image[:, :, ::-1])  # OpenCV writes BGR
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
