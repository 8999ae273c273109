"""Episode-start sources: where the loop's next training episode begins.

The loop asks its source once per episode, ``source.start(env, episode, step)`` (``step``: the
agent steps run so far), and runs the episode
until the env ends it or the start's ``step_limit`` (agent steps) is reached, which counts as a
truncation. The default source resets the env with an episode seed derived from the run seed
(robo_rl.seeding); SnapshotRL/S3RL (robo_rl.snapshot) plugs in a source that restores a teacher snapshot through
``env.set_state(snapshot, new_episode=True)`` and truncates after ``truncate_steps``. A source's
state (sampler RNG, schedule position) goes into the checkpoint, so a resumed run starts the
same episodes an unbroken one would.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from robo_rl.seeding import TRAIN_EPISODES, episode_seed


@dataclass
class EpisodeStart:
    obs: Any
    info: dict
    step_limit: int | None = None   # truncate after this many agent steps (None: the env decides)
    metrics: dict[str, float] = field(default_factory=dict)  # logged with the episode's train row


@runtime_checkable
class EpisodeStartSource(Protocol):
    def start(self, env: Any, episode: int, step: int) -> EpisodeStart: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


class ResetStarts:
    """``env.reset(seed=episode_seed(run_seed, TRAIN_EPISODES, episode))``: every episode of every
    run seed starts from its own independent seed."""

    def __init__(self, run_seed: int):
        self.run_seed = int(run_seed)

    def seed_of(self, episode: int) -> int:
        return episode_seed(self.run_seed, TRAIN_EPISODES, episode)

    def start(self, env: Any, episode: int, step: int = 0) -> EpisodeStart:
        obs, info = env.reset(seed=self.seed_of(episode))
        return EpisodeStart(obs, info)

    kind = "reset"  # a source's state names its kind: a checkpoint resumes only into the same kind

    def state_dict(self) -> dict:
        return {"kind": self.kind, "run_seed": self.run_seed}  # episodes index the seed stream

    def load_state_dict(self, state: dict) -> None:
        check_start_kind(state, self.kind)
        if int(state["run_seed"]) != self.run_seed:
            raise ValueError(f"the checkpoint's episodes were seeded from run seed {state['run_seed']}, "
                             f"this config has seed={self.run_seed}; resume with the run's own seed")


def check_start_kind(state: dict, kind: str) -> None:
    """Refuse a checkpointed episode-start state of another kind (checkpoints before the tag: reset)."""
    saved = state.get("kind", "reset")
    if saved != kind:
        raise ValueError(f"the checkpoint's episodes started with {saved!r} starts, this config uses {kind!r} "
                         f"(snapshot={'s3rl' if saved == 's3rl' else 'none'} in the run's config.yaml); resume "
                         f"with the run's own snapshot settings")
