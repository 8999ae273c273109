"""Independent random streams of one run, all derived from the run seed.

Every source of randomness in a run (training episode starts, evaluation episode starts,
exploration actions, torch, each replay sampler) draws from its own stream, spawned from the run
seed with ``np.random.SeedSequence``: runs with seeds 0, 1, 2 share no episode start, and within
a run the training and evaluation starts are disjoint. (Reset seeds of the form ``seed + episode``
made run 1 replay run 0's start states shifted by one episode.) Seeds are 32 bits (dm_control
takes no more), so two streams collide with probability ~n^2 / 2^33 for n seeds drawn: 10^-5
for the 200 starts of ten 20-episode runs, ~1 for 10^5 episodes across runs.

    episode_seed(run_seed, TRAIN_EPISODES, episode)  -> the env.reset seed of that episode
    stream_seed(run_seed, REPLAY)                    -> a seed for one generator
"""
from __future__ import annotations

import numpy as np

# Stream ids (fixed forever: changing one changes every run's randomness).
TRAIN_EPISODES = 1
EVAL_EPISODES = 2
EXPLORATION = 3      # uniform actions during the seed steps
TORCH = 4            # torch's global generator (network initialisation, the agent's own RNG)
REPLAY = 5           # the online replay's sampler
DEMOS = 6            # the demo / offline source's sampler
TEACHER_EPISODES = 7  # S3RL: the teacher's rollout episodes (robo_rl.snapshot)
SNAPSHOT_STARTS = 8  # S3RL: the snapshot sampler (index 1: its k-means)
COLLECT_EPISODES = 9  # `robo-rl collect`: the dataset's episode starts
COLLECT_ACTIONS = 10  # `robo-rl collect`: uniform actions (index 0: reference episodes, 1 + e: episode e)
ACTING_POLICY = 20    # realtime.enabled: the acting copy's sampling noise (robo_rl.loops.realtime)


def stream_seed(run_seed: int, stream: int, index: int = 0) -> int:
    """A 32-bit seed for item ``index`` of ``stream`` of the run ``run_seed`` (fits every
    simulator: dm_control and numpy's legacy RandomState take < 2**32)."""
    if isinstance(run_seed, bool) or not isinstance(run_seed, (int, np.integer)) or run_seed < 0:
        raise ValueError(f"seed must be an integer >= 0 (got {run_seed!r})")
    sequence = np.random.SeedSequence([int(run_seed), int(stream), int(index)])
    return int(sequence.generate_state(1, np.uint32)[0])


def episode_seed(run_seed: int, stream: int, episode: int) -> int:
    """The reset seed of ``episode`` (0, 1, ...) in ``stream`` (TRAIN_EPISODES or EVAL_EPISODES)."""
    return stream_seed(run_seed, stream, episode)


def eval_seeds(run_seed: int, episodes: int) -> list[int]:
    """The fixed start seeds of a run's evaluation episodes (the same at every evaluation)."""
    return [episode_seed(run_seed, EVAL_EPISODES, i) for i in range(episodes)]
