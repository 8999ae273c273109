"""Sampling from two replay sources by a fixed ratio (e.g. online data + demonstrations, RLPD)."""

from __future__ import annotations

from typing import Protocol

from robo_rl.replay.buffer import Batch
from robo_rl.replay.storage import space_to_spec


class BatchSource(Protocol):
    observation_space: object
    action_space: object

    def sample(self, batch_size: int) -> Batch: ...


class MixedSource:
    """Batches with ``round(secondary_fraction * B)`` rows from ``secondary`` and the rest from
    ``primary``; primary rows come first. Both sources must share observation and action spaces."""

    def __init__(self, primary: BatchSource, secondary: BatchSource, secondary_fraction: float):
        if not 0.0 <= secondary_fraction <= 1.0:
            raise ValueError(
                f"secondary_fraction must lie in [0, 1] (share of each batch drawn from the secondary "
                f"source), got {secondary_fraction}"
            )
        for name in ("observation_space", "action_space"):
            if space_to_spec(getattr(primary, name)) != space_to_spec(getattr(secondary, name)):
                raise ValueError(
                    f"MixedSource: primary and secondary {name} differ ({getattr(primary, name)} vs "
                    f"{getattr(secondary, name)}); both sources must come from the same environment spec"
                )
        self.primary = primary
        self.secondary = secondary
        self.secondary_fraction = float(secondary_fraction)
        self.observation_space = primary.observation_space
        self.action_space = primary.action_space

    def split(self, batch_size: int) -> tuple[int, int]:
        """Rows (primary, secondary) of a batch of ``batch_size``."""
        secondary_rows = round(self.secondary_fraction * batch_size)
        return batch_size - secondary_rows, secondary_rows

    def sample(self, batch_size: int) -> Batch:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        primary_rows, secondary_rows = self.split(batch_size)
        parts = []
        if primary_rows:
            parts.append(self.primary.sample(primary_rows))
        if secondary_rows:
            parts.append(self.secondary.sample(secondary_rows))
        return parts[0] if len(parts) == 1 else Batch.concatenate(parts)
