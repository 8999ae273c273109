"""Plain SAC vs passivity-aware SAC (Lagrangian, energy cost) on arm/contact_maze, state obs.

    .venv/bin/python bench/passivity_training.py --steps 4000 --seeds 0 1

Each variant trains with the same minimal online loop (uniform random actions for
``--seed-steps``, then one SAC update per policy step), the same seeds and the same task; the
passivity-aware one adds ``constraint=energy`` (robo_rl.agents.constraint): a cost critic on the
task's per-step ``info["cost"]`` (the energy the impedance controller's non-passive part injects,
J; with ``--energy-tank`` the energy drawn from the tank) and a multiplier held by dual ascent to
a discounted budget set from ``--episode-budget`` J per 100-step episode. At the end each agent
runs ``--eval-episodes`` deterministic episodes on held-out seeds; the table reports per
episode: energy (J), success rate, return, length, and the training episodes' energy over the
last quarter of training. The loop here is the bench's own (task kwargs such as energy_tank are
not reachable through robo_rl.envs); it mirrors robo_rl.loops.online's act/store/update order.

A few thousand steps is far below what the maze needs (neither variant reached the goal in
4000 steps; the scripted policy takes ~50 steps per episode): at that budget the comparison says
whether the constraint shapes energy use, not which variant solves the task. Measured (2-core
CPU, 4000 steps, seeds 0-2, 5 eval episodes each; ~2 min per run): plain SAC 4.1-4.4 J per eval
episode, return -22 to -24; passivity-aware SAC 1.8-2.3 J (budget 2 J), return -30 to -32,
lambda 0.44-0.54; success 0 for both.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np
import torch

from robo_rl.agents import make_agent
from robo_rl.agents.constraint import LagrangianConfig, budget_from_episode_budget
from robo_rl.replay import ReplayBuffer
from robo_rl.tasks import make_task

TASK = "contact_maze"
EVAL_SEED_OFFSET = 100_000   # eval episodes use seeds disjoint from training ones
# A short cost horizon (~10 steps = 1 s): a cost critic at gamma 0.99 is still far from its
# fixed point after a few thousand updates (Polyak tau 0.005), so lambda would never engage.
BENCH_COST_GAMMA = 0.9
# SAC's default alpha 1.0 keeps the policy near uniform for the first thousands of steps.
BENCH_INIT_TEMPERATURE = 0.1
LAST_TRAIN_SHARE = 0.25      # training-episode energy: mean over episodes ending in this last share


@dataclass
class RunResult:
    variant: str
    seed: int
    eval_energy: float
    eval_success: float
    eval_return: float
    eval_length: float
    train_energy_late: float
    multiplier: float
    seconds: float


def run_episode(env, policy, seed: int) -> tuple[float, float, bool, int]:
    """(return, energy, success, length) of one episode."""
    obs, _ = env.reset(seed=seed)
    total_return, energy, length = 0.0, 0.0, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        total_return += reward
        energy += info["cost"]
        length += 1
        if terminated or truncated:
            return total_return, energy, bool(info["success"]), length


def train_variant(variant: str, constraint: LagrangianConfig | None, args, seed: int) -> RunResult:
    torch.manual_seed(seed)
    task_kwargs = dict(obs_type="state", energy_tank=args.energy_tank)
    env = make_task(TASK, seed=seed, **task_kwargs)
    agent_cfg = dict(name="sac", hidden_dims=list(args.hidden_dims), batch_size=args.batch_size,
                     init_temperature=args.init_temperature, seed=seed)
    agent = make_agent(agent_cfg, env.observation_space, env.action_space, "cpu",
                       constraint=constraint)
    replay = ReplayBuffer(env.observation_space, env.action_space, capacity=2 * args.steps,  # slots: steps + one per episode
                          gamma=agent.cfg.gamma, seed=seed, track_cost=True)
    action_rng = np.random.default_rng(seed)
    start = time.perf_counter()
    step, late_energies = 0, []
    late_from = int((1.0 - LAST_TRAIN_SHARE) * args.steps)
    while step < args.steps:
        obs, _ = env.reset()  # the task RNG, seeded by make_task, draws each start
        replay.reset(obs)
        energy = 0.0
        while True:
            if step < args.seed_steps:
                action = action_rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)
            else:
                action = agent.act(obs)
            obs, reward, terminated, truncated, info = env.step(action)
            replay.add(action, reward, obs, terminated, truncated, cost=info["cost"])
            energy += info["cost"]
            if step >= args.seed_steps and len(replay) >= args.batch_size:
                agent.update(replay, step)
            step += 1
            if terminated or truncated:
                if step > late_from:
                    late_energies.append(energy)
                break
            if step >= args.steps:
                break
    seconds = time.perf_counter() - start

    # Every variant and training seed is evaluated on the same held-out starts.
    eval_env = make_task(TASK, seed=EVAL_SEED_OFFSET, **task_kwargs)
    episodes = [run_episode(eval_env, lambda o: agent.act(o, eval_mode=True), EVAL_SEED_OFFSET + k)
                for k in range(args.eval_episodes)]
    returns, energies, successes, lengths = (np.array(column, float) for column in zip(*episodes))
    multiplier = agent.constraint.multiplier.item() if agent.constraint is not None else float("nan")
    return RunResult(variant, seed, energies.mean(), successes.mean(), returns.mean(), lengths.mean(),
                     float(np.mean(late_energies)) if late_energies else float("nan"), multiplier,
                     seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4000, help="policy steps per run")
    parser.add_argument("--seed-steps", type=int, default=1000, help="uniform random steps first")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--episode-budget", type=float, default=2.0,
                        help="energy budget per 100-step episode (J); random actions use ~8.5")
    parser.add_argument("--multiplier-lr", type=float, default=LagrangianConfig.multiplier_lr)
    parser.add_argument("--cost-gamma", type=float, default=BENCH_COST_GAMMA,
                        help="discount of the cost critic (needs 1-step returns)")
    parser.add_argument("--init-temperature", type=float, default=BENCH_INIT_TEMPERATURE)
    parser.add_argument("--hidden-dims", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--energy-tank", action="store_true",
                        help="run the task with its energy tank (cost = energy drawn from the tank)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    episode_length = make_task(TASK).config.episode_steps
    budget = budget_from_episode_budget(args.episode_budget, episode_length, args.cost_gamma)
    constrained = LagrangianConfig(budget=budget, multiplier_lr=args.multiplier_lr,
                                   cost_gamma=args.cost_gamma)
    results = []
    for seed in args.seeds:
        for variant, constraint in (("SAC", None), ("passivity-aware SAC", constrained)):
            result = train_variant(variant, constraint, args, seed)
            results.append(result)
            print(f"done: {variant:20s} seed {seed}  ({result.seconds:.0f} s)", flush=True)

    print(f"\narm/{TASK}, state obs, {args.steps} policy steps ({args.seed_steps} random), "
          f"energy_tank={args.energy_tank}, budget {args.episode_budget} J/episode (discounted at "
          f"cost_gamma {args.cost_gamma}: {budget:.2f}), {args.eval_episodes} eval episodes per seed")
    header = (f"{'variant':20s} {'seed':>4s} {'energy/ep (J)':>13s} {'success':>7s} {'return':>8s} "
              f"{'length':>6s} {'train energy/ep, last 25%':>26s} {'lambda':>7s}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(f"{r.variant:20s} {r.seed:4d} {r.eval_energy:13.2f} {r.eval_success:7.2f} {r.eval_return:8.2f} "
              f"{r.eval_length:6.1f} {r.train_energy_late:26.2f} {r.multiplier:7.3f}")


if __name__ == "__main__":
    main()
