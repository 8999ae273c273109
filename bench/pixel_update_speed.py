"""Pixel learner update throughput: DrQ-v2 / DrM updates per second at batch 256, 84x84x9.

    .venv/bin/python bench/pixel_update_speed.py [--device cpu|cuda] [--seconds 8] [--rounds 2]
                                                 [--settings baseline bf16 threads2 ...]

Setting: robo_rl's DrQ-v2 (robo_rl/agents/drqv2.py) on uint8 observations of 3 stacked RGB
frames (9 x S x S), action dim 6, fed by an in-memory pool of random transitions (only the
update is timed: augmentation, encoder, critic, actor, Polyak). Baseline, measured in the same
run: "drqv2 fp32 NCHW 84x84 hidden 1024 batch 256, 1 thread" - the paper's update. Each other
setting changes one or two things: threads, bfloat16 autocast, channels_last convolutions,
image size, hidden width, batch, and DrM instead of DrQ-v2. Settings are interleaved over
rounds; the median rate per setting is printed with its ratio to the baseline.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from types import SimpleNamespace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP (2 shared cores)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gymnasium import spaces  # noqa: E402

from robo_rl.agents import make_agent  # noqa: E402

ACTION_DIM, POOL = 6, 512
BASE = dict(agent="drqv2", threads=1, precision="float32", channels_last=False, size=84,
            hidden=1024, batch=256)
SETTINGS = {
    "baseline": {},
    "threads2": dict(threads=2),
    "bf16": dict(precision="bfloat16"),
    "channels_last": dict(channels_last=True),
    "size64": dict(size=64),
    "hidden256": dict(hidden=256),
    "hidden256_threads2": dict(hidden=256, threads=2),
    "cpu_preset": dict(size=64, hidden=256, batch=128),             # configs/preset/pixels_cpu.yaml
    "cpu_preset_threads2": dict(size=64, hidden=256, batch=128, threads=2),
    "drm": dict(agent="drm"),
}


class PixelPool:
    def __init__(self, size: int, device, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.obs = torch.randint(0, 256, (POOL, 9, size, size), generator=g, dtype=torch.uint8).to(device)
        self.next_obs = torch.randint(0, 256, (POOL, 9, size, size), generator=g, dtype=torch.uint8).to(device)
        self.action = (torch.rand(POOL, ACTION_DIM, generator=g) * 2 - 1).to(device)
        self.reward = torch.randn(POOL, generator=g).to(device)
        self.discount = torch.full((POOL,), 0.97, device=device)
        self.g = g

    def sample(self, n: int):
        idx = torch.randint(POOL, (n,), generator=self.g).to(self.obs.device)
        return SimpleNamespace(obs=self.obs[idx], action=self.action[idx], reward=self.reward[idx],
                               discount=self.discount[idx], next_obs=self.next_obs[idx])


def use_channels_last(agent) -> None:
    """Convert the conv encoder and its input to NHWC (oneDNN / cuDNN prefer it on some hardware)."""
    encoder = agent.encoder.encoder
    encoder.to(memory_format=torch.channels_last)
    forward = encoder.forward

    def nhwc_forward(pixels):
        return forward(pixels.contiguous(memory_format=torch.channels_last))

    encoder.forward = nhwc_forward


def build(setting: dict, device):
    obs_space = spaces.Box(0, 255, (9, setting["size"], setting["size"]), np.uint8)
    act_space = spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)
    agent = make_agent({"name": setting["agent"], "seed": 0, "batch_size": setting["batch"],
                        "precision": setting["precision"],
                        "hidden_dims": [setting["hidden"]] * 2}, obs_space, act_space, device)
    if setting["channels_last"]:
        use_channels_last(agent)
    return agent, PixelPool(setting["size"], device)


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def rate(agent, pool, seconds: float, threads: int, device) -> float:
    torch.set_num_threads(threads)
    for step in range(2):                     # warm-up (allocator, oneDNN primitives, cuDNN autotune)
        agent.update(pool, 10_000 + step)
    sync(device)
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds or count < 2:
        agent.update(pool, 10_000 + count)
        count += 1
    sync(device)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    device = torch.device(args.device)
    names = ["baseline"] + [n for n in args.settings if n != "baseline"]
    settings = {name: {**BASE, **SETTINGS[name]} for name in names}
    built = {name: build(settings[name], device) for name in names}
    rates: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(args.rounds):
        for name in names:
            agent, pool = built[name]
            rates[name].append(rate(agent, pool, args.seconds, settings[name]["threads"], device))
            print(f"round {round_index}: {name:>22s} {rates[name][-1]:8.2f} updates/s", flush=True)
    base = statistics.median(rates["baseline"])
    print(f"\ndevice {device}, {args.rounds} rounds x {args.seconds:.0f} s; baseline = drqv2 fp32 NCHW "
          f"84x84 hidden 1024 batch 256, 1 thread")
    print("| setting | agent | threads | precision | NHWC | image | hidden | batch | updates/s | x baseline |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        s, median = settings[name], statistics.median(rates[name])
        print(f"| {name} | {s['agent']} | {s['threads']} | {s['precision']} | {s['channels_last']} | "
              f"{s['size']} | {s['hidden']} | {s['batch']} | {median:.2f} | {median / base:.2f} |")


if __name__ == "__main__":
    main()
