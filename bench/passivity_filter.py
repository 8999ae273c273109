"""Passivity filter (energy tank) on arm/contact_maze: unfiltered vs filtered, same policies.

    MUJOCO_GL=egl .venv/bin/python bench/passivity_filter.py [--episodes 10]

Both controllers run the same episodes (seeds 0..N-1) with variable impedance on, under two
policies:
  scripted    the task's scripted policy, stiffness action 0 (the middle of 300-2000 N/m);
  aggressive  the scripted set-point plus Gaussian noise (std sigma in action units, one row
              per --noise value; 2.0 saturates most steps, close to a random policy) and a
              stiffness that swings between the ends of its range every policy step (raising K
              while the spring is stretched injects energy: the non-passive part).
Per episode, from the task's per-step info (sums over the 500 Hz controller ticks):
  injected   energy the controller delivered beyond its spring: reference/stiffness jumps plus
             the realized excess of the applied (rate-limited, clipped) torque, i.e. its work
             on the arm minus the spring storage it gave up (with the tank: what the tank paid);
  budget     tank energy above its floor at the start (T_0 - T_min) + energy the plant gave
             up through the controller (realized dissipation) + energy handed back (negative
             jumps, spring releases); the passivity bound says injected <= budget at every
             moment (tests/test_plant_energy.py checks it on the plant's own work);
  violation  max over the episode of injected - budget, clipped at 0 (J);
  peak force the largest wrist force (tool weight removed) seen at the 10 Hz policy rate.
The table reports episodes with a violation, the largest violation, the mean injected energy,
the peak contact force (max over episodes), the success rate and the episodes a safety hold
ended (per-tick speed/force trip, ArmTaskConfig.max_force etc.).
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from robo_rl.tasks import make_task  # noqa: E402

POSITION_DIMS = 3   # action dims 0-2: set-point motion x, y, z
STIFFNESS_INDEX = 3  # the stiffness command follows them (variable_impedance=True)


@dataclass
class EpisodeResult:
    violation: float   # J
    injected: float    # J
    peak_force: float  # N
    success: bool
    hold: bool         # a safety hold ended the episode


def scripted(env, rng, step: int, noise: float) -> np.ndarray:
    return env.scripted_action()


def aggressive(env, rng, step: int, noise: float) -> np.ndarray:
    action = env.scripted_action()
    action[:POSITION_DIMS] = np.clip(action[:POSITION_DIMS]
                                     + rng.normal(0.0, noise, POSITION_DIMS), -1.0, 1.0)
    action[STIFFNESS_INDEX] = 1.0 if step % 2 == 0 else -1.0
    return action



def run_episode(env, policy, seed: int, noise: float) -> EpisodeResult:
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    tank = env.config.tank
    injected = dissipated = returned = violation = peak_force = 0.0
    for step in range(env.config.episode_steps):
        _, _, terminated, truncated, info = env.step(policy(env, rng, step, noise))
        injected += info["energy_cost"]
        dissipated += info["energy_dissipated"]
        returned += info["energy_returned"]
        budget = tank.initial_energy - tank.min_energy + dissipated + returned
        violation = max(violation, injected - budget)
        peak_force = max(peak_force, float(np.linalg.norm(env._wrench()[:3])))
        if terminated or truncated:
            break
    return EpisodeResult(max(violation, 0.0), injected, peak_force, bool(info["success"]),
                         bool(info.get("safety_hold", False)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.5, 2.0],
                        help="stds of the aggressive policy's set-point noise (action units)")
    args = parser.parse_args()

    envs = {filtered: make_task("contact_maze", seed=0, variable_impedance=True,
                                energy_tank=filtered) for filtered in (False, True)}
    tank = envs[True].config.tank
    print(f"arm/contact_maze, variable impedance, {args.episodes} episodes per row (seeds "
          f"0..{args.episodes - 1}), tank T_0={tank.initial_energy} J, T_min={tank.min_energy} J, "
          f"T_max={tank.max_energy} J")
    header = (f"{'policy':<16} {'controller':<11} {'violating eps':>13} {'max violation J':>15} "
              f"{'mean injected J':>15} {'peak force N':>12} {'success':>8} {'holds':>6}")
    print(header)
    print("-" * len(header))
    rows = [("scripted", scripted, 0.0)] + [(f"aggressive {noise:g}", aggressive, noise)
                                            for noise in args.noise]
    for policy_name, policy, noise in rows:
        for filtered, env in envs.items():
            results = [run_episode(env, policy, seed, noise) for seed in range(args.episodes)]
            violating = sum(r.violation > 0.0 for r in results)
            print(f"{policy_name:<16} {'tank' if filtered else 'unfiltered':<11} "
                  f"{violating:>6}/{len(results):<6} {max(r.violation for r in results):>15.3f} "
                  f"{np.mean([r.injected for r in results]):>15.3f} "
                  f"{max(r.peak_force for r in results):>12.1f} "
                  f"{np.mean([r.success for r in results]):>8.2f} "
                  f"{sum(r.hold for r in results):>6d}")

if __name__ == "__main__":
    main()
