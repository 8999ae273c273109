"""Policy steps per second of the MuJoCo arm tasks, from state and from 84x84 pixels.

    MUJOCO_GL=egl .venv/bin/python bench/arm_tasks.py [--steps 300] [--rounds 3]

Each task step runs ticks_per_step (50) controller ticks (mj_step1, Jacobian, impedance law,
mj_step2), one mj_forward, the observation and the reward. The named baseline, measured in the
same run on the same model, is the raw physics alone: ticks_per_step x mj_step with zero torque
plus one mj_forward per policy step (and, for pixels, one render of the same camera at the same
size). task / baseline is then the price of the controller and the task's Python around the
simulator. Random actions in [-1, 1]; episode resets happen outside the timed region. Variants
are interleaved in rounds so that load from other processes hits them alike. Reported: wall-clock
steps/s and CPU-time steps/s (the rate an uncontended core gives), and microseconds per control
tick (task step CPU time / ticks_per_step; the budget for a 500 Hz-1 kHz loop is 50 us).
"""
from __future__ import annotations

import argparse
import os
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")   # 6x7 matrices: threaded BLAS only adds latency
os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

from robo_rl.tasks import TASKS, make_task  # noqa: E402

IMAGE_SIZE = 84
TICK_BUDGET_US = 50.0


class TaskRunner:
    """Steps one task with random actions; time_steps(n) -> (wall s, cpu s) of n env.step calls."""

    def __init__(self, name: str, obs_type: str, seed: int):
        self.env = make_task(name, obs_type=obs_type, seed=seed, image_size=IMAGE_SIZE)
        self.rng = np.random.default_rng(seed)
        self.env.reset()

    def time_steps(self, n: int) -> tuple[float, float]:
        env, wall, cpu = self.env, 0.0, 0.0
        actions = self.rng.uniform(-1.0, 1.0, (n, *env.action_space.shape))
        for action in actions:
            w0, c0 = time.perf_counter(), time.process_time()
            _, _, terminated, truncated, _ = env.step(action)
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
            if terminated or truncated:
                env.reset()
        return wall, cpu

    def close(self) -> None:
        self.env.close()


class PhysicsBaseline:
    """Raw MuJoCo on the task's own model: ticks_per_step mj_step with zero torque, one
    mj_forward, and (pixels) one render per policy step."""

    def __init__(self, name: str, obs_type: str, seed: int):
        task = make_task(name, obs_type="state", seed=seed)
        task.reset()
        self.model, self.data = task.model, task.data
        self.data.ctrl[task.arm_ctrl] = 0.0
        self.ticks = task.ticks_per_step
        self.renderer = None
        if obs_type == "pixels":
            self.renderer = mujoco.Renderer(self.model, IMAGE_SIZE, IMAGE_SIZE)
            self.camera = task.config.camera
        self.start = mujoco.MjData(self.model)
        mujoco.mj_copyData(self.start, self.model, self.data)

    def time_steps(self, n: int) -> tuple[float, float]:
        m, d, wall, cpu = self.model, self.data, 0.0, 0.0
        mujoco.mj_copyData(d, m, self.start)  # the unactuated arm drifts; restart each chunk
        for _ in range(n):
            w0, c0 = time.perf_counter(), time.process_time()
            mujoco.mj_step(m, d, self.ticks)
            mujoco.mj_forward(m, d)
            if self.renderer is not None:
                self.renderer.update_scene(d, camera=self.camera)
                self.renderer.render()
            wall += time.perf_counter() - w0
            cpu += time.process_time() - c0
        return wall, cpu

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="timed policy steps per variant")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--obs", nargs="+", default=["state", "pixels"],
                        choices=["state", "pixels"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    variants: dict[tuple[str, str, str], object] = {}
    for name in TASKS:
        for obs_type in args.obs:
            variants[(name, obs_type, "task")] = TaskRunner(name, obs_type, args.seed)
            variants[(name, obs_type, "physics")] = PhysicsBaseline(name, obs_type, args.seed)
    totals = {key: [0.0, 0.0] for key in variants}
    chunk = max(1, args.steps // args.rounds)
    for _ in range(args.rounds):
        for key, runner in variants.items():
            wall, cpu = runner.time_steps(chunk)
            totals[key][0] += wall
            totals[key][1] += cpu
    steps = chunk * args.rounds
    for runner in variants.values():  # free the GL contexts before interpreter shutdown
        runner.close()

    print(f"arm tasks, {steps} random-action policy steps per variant, {IMAGE_SIZE}x{IMAGE_SIZE} "
          f"pixels, MUJOCO_GL={os.environ['MUJOCO_GL']}; steps/s wall (CPU time)")
    header = (f"{'task':<13} {'obs':<7} {'task steps/s':>17} {'physics steps/s':>17} "
              f"{'task/physics':>12} {'us/tick':>8} {'overhead us/tick':>17}")
    print(header)
    print("-" * len(header))
    for name in TASKS:
        ticks = variants[(name, args.obs[0], "physics")].ticks
        for obs_type in args.obs:
            task_wall, task_cpu = totals[(name, obs_type, "task")]
            phys_wall, phys_cpu = totals[(name, obs_type, "physics")]
            tick_us = task_cpu / steps / ticks * 1e6
            overhead_us = (task_cpu - phys_cpu) / steps / ticks * 1e6
            print(f"{name:<13} {obs_type:<7} {steps / task_wall:>7.0f} ({steps / task_cpu:>6.0f})"
                  f"  {steps / phys_wall:>7.0f} ({steps / phys_cpu:>6.0f})"
                  f"  {phys_cpu / task_cpu:>10.2f}x {tick_us:>8.1f} {overhead_us:>17.1f}")
    print(f"us/tick: task CPU time per controller tick (budget {TICK_BUDGET_US:.0f} us), including "
          "the per-step observation/reward share; overhead: the same minus the physics baseline. "
          "task/physics: share of the raw-physics rate the task keeps (CPU time).")


if __name__ == "__main__":
    main()
