"""Learner-step throughput of robo_rl's SAC against a plain PyTorch SAC update loop.

Setting: obs dim 17, action dim 6 (HalfCheetah-sized), 256x256 MLPs, batch 256, utd 1, random
data from an in-memory source (so only the update is timed). The baseline below is the usual
straightforward implementation (CleanRL style): two separate Q networks, a per-parameter Polyak
loop, Normal + log(1 - tanh^2 + eps), and an actor loss whose backward also computes (unused)
critic gradients. Both run in the same process, interleaved over several rounds to even out
noise from other processes; the median rate of each is printed, per thread count.

    .venv/bin/python bench/sac_update_speed.py [--threads 1 2] [--seconds 2] [--rounds 3]
                                               [--agent sac|rlpd] [--utd 1]
                                               [--precision float32|bfloat16]

On a shared machine, compare only numbers printed by the same run (other processes on the
cores slow both sides alike only when they are interleaved, as here).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from types import SimpleNamespace

# With more threads than free cores, OpenMP threads spinning at barriers starve each other: on
# a shared 2-core machine threads=2 fell to ~2 steps/s without this (see bench/sac_throughput.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when torch loads OpenMP

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from robo_rl.agents import make_agent  # noqa: E402

OBS_DIM, ACTION_DIM, HIDDEN, BATCH = 17, 6, 256, 256
LR, GAMMA, TAU = 3e-4, 0.99, 0.005
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
TANH_EPS = 1e-6  # CleanRL's guard inside log(1 - tanh^2 + eps)


class RandomSource:
    """A fixed pool of random transitions; sample() draws rows by index like a replay would."""

    def __init__(self, size: int = 100_000, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.obs = torch.randn(size, OBS_DIM, generator=g)
        self.next_obs = torch.randn(size, OBS_DIM, generator=g)
        self.action = torch.rand(size, ACTION_DIM, generator=g) * 2 - 1
        self.reward = torch.randn(size, generator=g)
        self.discount = torch.full((size,), GAMMA)
        self.generator = g

    def sample(self, batch_size: int):
        idx = torch.randint(len(self.reward), (batch_size,), generator=self.generator)
        return SimpleNamespace(obs=self.obs[idx], action=self.action[idx], reward=self.reward[idx],
                               discount=self.discount[idx], next_obs=self.next_obs[idx])


# ---- the plain baseline ------------------------------------------------------------------------

def mlp(in_dim, out_dim):
    return nn.Sequential(nn.Linear(in_dim, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU(),
                         nn.Linear(HIDDEN, out_dim))


class PlainActor(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(OBS_DIM, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN),
                                  nn.ReLU())
        self.mean = nn.Linear(HIDDEN, ACTION_DIM)
        self.log_std = nn.Linear(HIDDEN, ACTION_DIM)

    def get_action(self, obs):
        h = self.body(obs)
        mean, log_std = self.mean(h), torch.tanh(self.log_std(h))
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (log_std + 1)
        normal = torch.distributions.Normal(mean, log_std.exp())
        u = normal.rsample()
        action = torch.tanh(u)
        log_prob = (normal.log_prob(u) - torch.log(1 - action.pow(2) + TANH_EPS)).sum(1)
        return action, log_prob


class PlainSAC:
    def __init__(self):
        self.actor = PlainActor()
        self.q1, self.q2 = mlp(OBS_DIM + ACTION_DIM, 1), mlp(OBS_DIM + ACTION_DIM, 1)
        self.q1_target, self.q2_target = mlp(OBS_DIM + ACTION_DIM, 1), mlp(OBS_DIM + ACTION_DIM, 1)
        self.q1_target.load_state_dict(self.q1.state_dict())
        self.q2_target.load_state_dict(self.q2.state_dict())
        self.q_optimizer = torch.optim.Adam(list(self.q1.parameters()) + list(self.q2.parameters()),
                                            lr=LR)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=LR)
        self.log_alpha = torch.zeros(1, requires_grad=True)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=LR)
        self.target_entropy = -float(ACTION_DIM)

    def update(self, source, step):
        b = source.sample(BATCH)
        alpha = self.log_alpha.exp().item()
        with torch.no_grad():
            next_action, next_log_prob = self.actor.get_action(b.next_obs)
            x = torch.cat([b.next_obs, next_action], 1)
            next_q = torch.min(self.q1_target(x), self.q2_target(x)).view(-1) - alpha * next_log_prob
            y = b.reward + b.discount * next_q
        x = torch.cat([b.obs, b.action], 1)
        q_loss = (nn.functional.mse_loss(self.q1(x).view(-1), y)
                  + nn.functional.mse_loss(self.q2(x).view(-1), y))
        self.q_optimizer.zero_grad()
        q_loss.backward()
        self.q_optimizer.step()

        action, log_prob = self.actor.get_action(b.obs)
        x = torch.cat([b.obs, action], 1)
        q_pi = torch.min(self.q1(x), self.q2(x)).view(-1)
        actor_loss = (alpha * log_prob - q_pi).mean()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()

        alpha_loss = (-self.log_alpha.exp() * (log_prob.detach() + self.target_entropy)).mean()
        self.alpha_optimizer.zero_grad()
        alpha_loss.backward()
        self.alpha_optimizer.step()

        for net, target in ((self.q1, self.q1_target), (self.q2, self.q2_target)):
            for p, tp in zip(net.parameters(), target.parameters()):
                tp.data.copy_(TAU * p.data + (1 - TAU) * tp.data)
        return {"q_loss": q_loss.item(), "actor_loss": actor_loss.item(), "alpha": alpha}


# ---- timing ------------------------------------------------------------------------------------

def rate(learner, source, seconds: float, warmup: int = 10) -> float:
    for step in range(warmup):
        learner.update(source, step)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        learner.update(source, count)
        count += 1
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--agent", default="sac", choices=["sac", "rlpd"])
    parser.add_argument("--utd", "--critic-steps-per-update", dest="utd", type=int, default=1,
                        help="agent.critic_steps_per_update (critic minibatches per update)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"],
                        help="robo_rl's SACConfig.precision (the plain baseline stays float32)")
    args = parser.parse_args()

    torch.manual_seed(0)
    box = SimpleNamespace  # minimal gym-like spaces: only shape/dtype/low/high are read
    obs_space = box(shape=(OBS_DIM,), dtype=np.float32)
    action_space = box(shape=(ACTION_DIM,), dtype=np.float32, low=-np.ones(ACTION_DIM),
                       high=np.ones(ACTION_DIM))
    source = RandomSource()
    print(f"SAC update speed: obs {OBS_DIM}, act {ACTION_DIM}, {HIDDEN}x{HIDDEN}, batch {BATCH}, "
          f"agent={args.agent}, utd={args.utd}, precision={args.precision}, "
          f"torch {torch.__version__}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        ours_rates, plain_rates = [], []
        for _ in range(args.rounds):
            ours = make_agent({"name": args.agent, "critic_steps_per_update": args.utd, "seed": 0,
                               "precision": args.precision}, obs_space, action_space, args.device)
            ours_rates.append(rate(ours, source, args.seconds))
            if args.agent == "sac" and args.utd == 1 and args.device == "cpu":
                plain_rates.append(rate(PlainSAC(), source, args.seconds))
        ours_rate = statistics.median(ours_rates)
        line = f"threads={threads}: robo_rl {ours_rate:8.1f} learner steps/s"
        if plain_rates:
            plain_rate = statistics.median(plain_rates)
            line += f" | plain PyTorch SAC {plain_rate:8.1f} steps/s | ratio {ours_rate / plain_rate:.2f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
