"""Replay: ring buffer with n-step returns, frame de-dup, disk chunks, and source mixing."""

from robo_rl.replay.buffer import Batch, ReplayBuffer
from robo_rl.replay.mixed import MixedSource
from robo_rl.replay.storage import ReplayDataError

__all__ = ["Batch", "ReplayBuffer", "MixedSource", "ReplayDataError"]
