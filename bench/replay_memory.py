"""Replay memory per stored pixel transition, and sampling throughput.

Memory: robo_rl's ReplayBuffer (one stored frame per step, stacks rebuilt at sample time) against
the naive layout (obs and next_obs each stored as a full frame stack per transition), both filled
to capacity in this run with DMC-like episodes (500 agent steps: 1000 steps, action repeat 2),
action dim 6. Bytes per transition = allocated bytes / transitions held. Two frame formats:
RGB 84x84x3 frames stacked 3 (obs 9x84x84, the DrQ-v2 setting) and single-channel 84x84 frames
stacked 3 (obs 3x84x84). The target of 7.5 KB/transition is checked for both; note that one raw
RGB 84x84 frame alone is 21,168 B, so no lossless uncompressed layout meets it for RGB.

Throughput: batches/s of sample(256) for state obs (dim 17) and for RGB pixels (stack 3), n_step 3.

    .venv/bin/python bench/replay_memory.py [--capacity 2000] [--throughput-capacity 20000] [--seconds 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from gymnasium import spaces

from robo_rl.replay import ReplayBuffer

TARGET_BYTES = 7.5 * 1024  # per stored pixel transition
EPISODE_STEPS = 500
ACTION_DIM = 6
STATE_DIM = 17
BATCH = 256
STACK = 3
IMAGE = 84
FRAME_POOL = 64  # distinct random frames cycled while filling (content does not change cost)


class NaiveStackingReplay:
    """The usual layout: every transition stores obs and next_obs as full frame stacks."""

    def __init__(self, obs_shape: tuple[int, ...], capacity: int):
        self.obs = np.zeros((capacity, *obs_shape), np.uint8)
        self.next_obs = np.zeros((capacity, *obs_shape), np.uint8)
        self.action = np.zeros((capacity, ACTION_DIM), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, bool)
        self.truncated = np.zeros(capacity, bool)
        self.size = 0

    def add(self, obs, action, reward, next_obs, terminated, truncated) -> None:
        i = self.size % len(self.reward)
        self.obs[i], self.next_obs[i], self.action[i] = obs, next_obs, action
        self.reward[i], self.terminated[i], self.truncated[i] = reward, terminated, truncated
        self.size += 1

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.obs, self.next_obs, self.action, self.reward,
                                      self.terminated, self.truncated))


def pixel_episodes(channels: int, num_steps: int, seed: int = 0):
    """Yields (obs, action, reward, next_obs, truncated) with naive stacking, episodes of EPISODE_STEPS."""
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 256, (FRAME_POOL, channels, IMAGE, IMAGE), dtype=np.uint8)
    step = 0
    while True:
        frames = [pool[step % FRAME_POOL]] * STACK
        obs = np.concatenate(frames)
        for t in range(EPISODE_STEPS):
            frames = frames[1:] + [pool[(step + 1) % FRAME_POOL]]
            next_obs = np.concatenate(frames)
            yield obs, rng.uniform(-1, 1, ACTION_DIM).astype(np.float32), 1.0, next_obs, t == EPISODE_STEPS - 1
            obs = next_obs
            step += 1
            if step == num_steps:
                return


def fill(buffer: ReplayBuffer, stream) -> None:
    episode_open = False
    for obs, action, reward, next_obs, truncated in stream:
        if not episode_open:
            buffer.reset(obs)
        buffer.add(action, reward, next_obs, False, truncated)
        episode_open = not truncated


def memory_row(channels: int, capacity: int) -> None:
    obs_space = spaces.Box(0, 255, (channels * STACK, IMAGE, IMAGE), np.uint8)
    action_space = spaces.Box(-1, 1, (ACTION_DIM,), np.float32)
    ours = ReplayBuffer(obs_space, action_space, capacity=capacity, frame_stack=STACK)
    fill(ours, pixel_episodes(channels, 2 * capacity))  # wraps once: the steady state
    naive = NaiveStackingReplay(obs_space.shape, capacity)
    for obs, action, reward, next_obs, truncated in pixel_episodes(channels, capacity):
        naive.add(obs, action, reward, next_obs, False, truncated)
    ours_per = ours.nbytes / len(ours)
    naive_per = naive.nbytes / min(naive.size, capacity)
    frame = channels * IMAGE * IMAGE
    verdict = "PASS" if ours_per <= TARGET_BYTES else "FAIL"
    print(f"frames {IMAGE}x{IMAGE}x{channels}, stack {STACK} (obs {obs_space.shape}), capacity {capacity}:")
    print(f"  robo_rl ReplayBuffer : {ours_per:10.0f} B/transition  (one frame = {frame} B, "
          f"{len(ours)} transitions held)")
    print(f"  naive stacking       : {naive_per:10.0f} B/transition")
    print(f"  ratio naive/robo_rl  : {naive_per / ours_per:10.2f} x")
    print(f"  target {TARGET_BYTES:.0f} B        : {verdict}"
          + ("" if verdict == "PASS" else f"  (one raw frame alone is {frame} B)"))


def throughput(buffer: ReplayBuffer, seconds: float) -> float:
    buffer.sample(BATCH)  # warm-up
    batches, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        buffer.sample(BATCH)
        batches += 1
    return batches / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--capacity", type=int, default=2000, help="slots for the memory comparison")
    parser.add_argument("--throughput-capacity", type=int, default=20000, help="slots for the pixel throughput")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per throughput case")
    args = parser.parse_args()
    torch.set_num_threads(1)

    print("== memory per stored pixel transition")
    memory_row(channels=3, capacity=args.capacity)
    memory_row(channels=1, capacity=args.capacity)

    print(f"== sample throughput, batch {BATCH}, n_step 3 (CPU, torch threads 1)")
    action_space = spaces.Box(-1, 1, (ACTION_DIM,), np.float32)
    state = ReplayBuffer(spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32), action_space,
                         capacity=100_000, n_step=3)
    rng = np.random.default_rng(0)
    states = rng.normal(size=(EPISODE_STEPS + 1, STATE_DIM)).astype(np.float32)
    for _ in range(100_000 // (EPISODE_STEPS + 1)):
        state.reset(states[0])
        for t in range(EPISODE_STEPS):
            state.add(rng.uniform(-1, 1, ACTION_DIM), 1.0, states[t + 1], False, t == EPISODE_STEPS - 1)
    print(f"  state  (dim {STATE_DIM}, {len(state)} transitions): {throughput(state, args.seconds):8.1f} batches/s")

    pixels = ReplayBuffer(spaces.Box(0, 255, (3 * STACK, IMAGE, IMAGE), np.uint8), action_space,
                          capacity=args.throughput_capacity, n_step=3, frame_stack=STACK)
    fill(pixels, pixel_episodes(3, args.throughput_capacity))
    print(f"  pixels (9x84x84, {len(pixels)} transitions): {throughput(pixels, args.seconds):8.1f} batches/s")


if __name__ == "__main__":
    main()
