"""Ring-buffer replay with n-step returns, frame de-duplication and append-only disk chunks.

Layout. The ring holds ``capacity`` *slots*, one per observation. ``reset(obs)`` writes a slot
that starts an episode; ``add(action, reward, next_obs, ...)`` fills the action/reward/end flags
of the current slot and writes ``next_obs`` into the next one. An episode of T steps therefore
uses T + 1 slots (its last observation has no action). Slot ``g`` (a global, ever-increasing
index) lives at ring position ``g % capacity``.

Transition ``g`` is sampleable ("valid") when
  * its n-step window is complete: n recorded steps, or fewer that end the episode
    (terminated or truncated); an episode abandoned by an early ``reset`` keeps its tail
    unsampleable, since its window never closes;
  * every slot it reads is still in the ring: frames back to ``max(episode_start, g - k + 1)``
    for the frame stack k, up to the bootstrap observation ``g + m``.
Validity is tracked incrementally (O(n + k) per step) and recomputed vectorised after a reload.

Frame de-dup: for a pixel observation stacked k times (channel-first ``(k * C, H, W)``, oldest
frame first, the first frame repeated at reset) only the newest C channels are stored per slot;
the stack of slot g is rebuilt from frames ``max(episode_start, g - k + 1 + j)``, j = 0..k-1.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from gymnasium import spaces

from robo_rl.replay import storage
from robo_rl.spaces import PIXELS_KEY, is_pixel_box

# A plain Box observation is stored under this key and handed back as a bare tensor.
_BOX_KEY = "obs"
# Dict key that holds the stacked camera frames.
# Sampling draws ring positions uniformly and redraws the invalid ones while at least this
# share of positions is valid (then a redraw round is cheap); below it, it samples from the
# explicit list of valid positions instead.
_REJECTION_MIN_VALID_SHARE = 0.5


@dataclasses.dataclass
class Batch:
    """A batch of n-step transitions (torch tensors on the buffer's device).

    reward:   sum_{j<m} gamma^j r_{t+j}, over the m <= n steps left in the episode.
    discount: gamma^m, or 0 if the episode terminated inside the window (truncation bootstraps).
    next_obs: the observation m steps after ``obs``.
    cost:     sum_{j<m} gamma^j c_{t+j} of the per-step cost (constrained RL), discounted like
              the reward; None unless the buffer was built with ``track_cost=True``.
    """

    obs: torch.Tensor | dict[str, torch.Tensor]
    action: torch.Tensor
    reward: torch.Tensor
    discount: torch.Tensor
    next_obs: torch.Tensor | dict[str, torch.Tensor]
    cost: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.action.shape[0]

    @staticmethod
    def concatenate(batches: list["Batch"]) -> "Batch":
        """Rows of ``batches`` stacked in order (used to mix sources)."""

        def cat(values):
            if any(value is None for value in values):
                if not all(value is None for value in values):
                    raise ValueError(
                        "cannot mix batches with and without costs: build every replay source with "
                        "track_cost=True (and record a cost per step) or none of them")
                return None
            if isinstance(values[0], dict):
                return {key: torch.cat([value[key] for value in values]) for key in values[0]}
            return torch.cat(values)

        return Batch(**{field.name: cat([getattr(b, field.name) for b in batches])
                        for field in dataclasses.fields(Batch)})


@dataclasses.dataclass(frozen=True)
class _ObsField:
    """One observation entry: full shape, dtype, and how many frames one observation stacks."""

    shape: tuple[int, ...]
    dtype: np.dtype
    stack: int  # > 1: only the newest frame is stored per slot

    @property
    def frame_shape(self) -> tuple[int, ...]:
        return (self.shape[0] // self.stack, *self.shape[1:])



class ReplayBuffer:
    """Replay of single-environment experience; see the module docstring for the layout.

    Args:
        observation_space: Box, or Dict of Boxes (e.g. ``{"pixels", "state"}``).
        action_space: Box; actions are stored in its dtype and sampled as float32.
        capacity: ring size in slots (observations). Default 1_000_000 (DrQ-v2, SAC).
        n_step: length of the return window. Default 1.
        gamma: discount per agent step. Default 0.99.
        frame_stack: k of the pixel observation (Box uint8 (k*C, H, W) or Dict key "pixels");
            ignored when the observation has no pixels. Default 1 (nothing to de-duplicate).
        directory: if set, slots are appended there in chunk files (see ``storage``). A
            directory that already holds chunks must be resumed with ``load_from_disk()`` (or
            ``ReplayBuffer.load``) before anything is added; its data is never overwritten.
        chunk_size: slots per chunk file; a killed process loses at most the chunk being
            filled. Must be smaller than ``capacity``. Default 1000.
        seed: seed of the sampler's RNG.
        device: torch device of sampled batches (CUDA batches are gathered into pinned memory).
        track_cost: store a per-step cost beside the reward (constrained RL): ``add`` then needs
            ``cost=``, batches carry ``Batch.cost``, and chunks persist it. Default False.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        capacity: int = 1_000_000,
        n_step: int = 1,
        gamma: float = 0.99,
        frame_stack: int = 1,
        directory: str | Path | None = None,
        chunk_size: int = 1000,
        seed: int = 0,
        device: str | torch.device = "cpu",
        track_cost: bool = False,
    ):
        if not isinstance(action_space, spaces.Box):
            raise TypeError(f"action_space must be a gymnasium Box, got {type(action_space).__name__}")
        _require(n_step >= 1, f"n_step must be >= 1, got {n_step}")
        _require(0.0 <= gamma <= 1.0, f"gamma must lie in [0, 1], got {gamma}")
        _require(frame_stack >= 1, f"frame_stack must be >= 1, got {frame_stack}")
        self.observation_space = observation_space
        self.action_space = action_space
        self.n_step = int(n_step)
        self.gamma = float(gamma)
        self.frame_stack = int(frame_stack)
        self.capacity = int(capacity)
        self.chunk_size = int(chunk_size)
        self.seed = seed
        self.device = torch.device(device)
        self.track_cost = bool(track_cost)
        self._fields = self._describe_observation(observation_space, self.frame_stack)
        self._max_stack = max(field.stack for field in self._fields.values())
        _require(
            self.capacity > self.n_step + self._max_stack,
            f"capacity ({self.capacity}) must exceed n_step + frame_stack "
            f"({self.n_step} + {self._max_stack}) to hold one complete transition",
        )

        self._obs = {key: np.zeros((self.capacity, *field.frame_shape), field.dtype)
                     for key, field in self._fields.items()}
        self._action = np.zeros((self.capacity, *action_space.shape), action_space.dtype)
        self._reward = np.zeros(self.capacity, np.float32)
        self._cost = np.zeros(self.capacity, np.float32) if self.track_cost else None
        self._terminated = np.zeros(self.capacity, bool)
        self._truncated = np.zeros(self.capacity, bool)
        self._has_action = np.zeros(self.capacity, bool)  # the step from this slot was recorded
        self._episode_start = np.zeros(self.capacity, np.int64)  # global slot of the episode's first obs
        self._valid = np.zeros(self.capacity, bool)
        self._valid_count = 0
        self._write_count = 0  # global index of the next slot to write
        self._in_episode = False
        self._rng = np.random.Generator(np.random.PCG64(seed))
        self._pin_memory = self.device.type == "cuda"

        self.directory = None if directory is None else Path(directory)
        self._unloaded_disk_data = False
        if self.directory is not None:
            _require(0 < self.chunk_size < self.capacity,
                     f"chunk_size ({self.chunk_size}) must be in [1, capacity={self.capacity})")
            self._open_directory()

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _describe_observation(space: spaces.Space, frame_stack: int) -> dict[str, _ObsField]:
        storage.space_to_spec(space)  # rejects unsupported space types with a clear error
        if isinstance(space, spaces.Box):
            boxes, pixel_key = {_BOX_KEY: space}, (_BOX_KEY if is_pixel_box(space) else None)
        else:
            boxes = dict(space.spaces)
            for key, sub in boxes.items():
                if not isinstance(sub, spaces.Box):
                    raise TypeError(f"observation Dict entry {key!r} must be a Box, got {type(sub).__name__}")
            pixel_key = PIXELS_KEY if PIXELS_KEY in boxes else None
        fields = {}
        for key, box in boxes.items():
            stack = frame_stack if key == pixel_key else 1
            if stack > 1 and (len(box.shape) != 3 or box.shape[0] % stack):
                raise ValueError(
                    f"pixel observation {key!r} has shape {box.shape}; with frame_stack={stack} it must be "
                    f"channel-first (k*C, H, W) with the channel count divisible by {stack}"
                )
            fields[key] = _ObsField(tuple(box.shape), np.dtype(box.dtype), stack)
        return fields

    def _metadata(self) -> dict[str, Any]:
        return {
            "format_version": storage.FORMAT_VERSION,
            "observation_space": storage.space_to_spec(self.observation_space),
            "action_space": storage.space_to_spec(self.action_space),
            "stored_frame_shapes": {key: list(f.frame_shape) for key, f in self._fields.items()},
            "frame_stack": self.frame_stack,
            "chunk_size": self.chunk_size,
            "n_step": self.n_step,
            "gamma": self.gamma,
            "capacity": self.capacity,
            "track_cost": self.track_cost,
        }

    def _open_directory(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        saved = storage.read_metadata(self.directory)
        if saved is None:
            if storage.list_chunks(self.directory):
                raise storage.ReplayDataError(
                    f"{self.directory} holds replay chunks but no {storage.METADATA_FILE}; "
                    "restore the metadata file or use an empty directory"
                )
            storage.write_metadata(self.directory, self._metadata())
            return
        mine = self._metadata()
        saved.setdefault("track_cost", False)  # directories written before costs were tracked
        # Only what changes the stored bytes must match; n_step, gamma and capacity are
        # sampling settings and may differ from the run that wrote the data.
        for key in ("observation_space", "action_space", "frame_stack", "chunk_size", "track_cost"):
            if saved[key] != mine[key]:
                raise storage.ReplayDataError(
                    f"replay directory {self.directory} was written with {key}={saved[key]} but this "
                    f"buffer has {key}={mine[key]}; use matching settings or another directory"
                )
        self._unloaded_disk_data = bool(storage.list_chunks(self.directory))

    # ------------------------------------------------------------------ public API
    def directory_has_data(self) -> bool:
        """True while this buffer's directory holds chunks that load_from_disk() has not read."""
        return self._unloaded_disk_data

    def __len__(self) -> int:
        """Number of sampleable transitions."""
        return self._valid_count

    @property
    def num_slots_written(self) -> int:
        """Observations written since the buffer began (including those reloaded from disk)."""
        return self._write_count

    @property
    def nbytes(self) -> int:
        """Bytes held by the ring's arrays (allocated for the full capacity)."""
        arrays = [*self._obs.values(), self._action, self._reward, self._terminated, self._truncated,
                  self._has_action, self._episode_start, self._valid]
        if self.track_cost:
            arrays.append(self._cost)
        return sum(array.nbytes for array in arrays)

    def reset(self, obs) -> None:
        """Start an episode with its first observation (abandons an unfinished one)."""
        self._check_writable()
        values = self._prepare_obs(obs, "obs")
        for key, field in self._fields.items():
            if field.stack > 1:
                stack = values[key].reshape(field.stack, *field.frame_shape)
                if not np.array_equal(stack, np.broadcast_to(stack[-1], stack.shape)):
                    raise ValueError(
                        f"obs[{key!r}] at reset is not the first frame repeated {field.stack} times; the "
                        "replay expects naive frame stacking (oldest frame first, first frame repeated at reset)"
                    )
        self._write_slot(values, episode_start=self._write_count)
        self._in_episode = True

    def add(self, action, reward: float, next_obs, terminated: bool, truncated: bool,
            cost: float | None = None) -> None:
        """Record one agent step from the current slot. Bad input raises before anything changes.
        ``cost``: the step's constraint cost; required exactly when built with ``track_cost``."""
        self._check_writable()
        if not self._in_episode:
            raise RuntimeError(
                "add() needs an open episode: call reset(obs) first, and again after a step that "
                "terminated or truncated"
            )
        action = np.asarray(action)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action has shape {action.shape}, expected {self.action_space.shape}")
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action contains NaN/inf: {action}")
        reward = float(reward)
        if not math.isfinite(reward):
            raise ValueError(f"reward is {reward}; it must be finite")
        cost = self._checked_cost(cost)
        values = self._prepare_obs(next_obs, "next_obs")
        current = (self._write_count - 1) % self.capacity
        episode_start = int(self._episode_start[current])
        self._check_continues_stack(values, episode_start)

        step = self._write_count - 1
        self._action[current] = action
        self._reward[current] = reward
        if self.track_cost:
            self._cost[current] = cost
        self._terminated[current] = bool(terminated)
        self._truncated[current] = bool(truncated)
        self._has_action[current] = True
        try:
            self._write_slot(values, episode_start)
        except BaseException:
            # A failed chunk write (disk full, ...) leaves the step unrecorded, as it found it.
            self._clear_step(current)
            raise

        # Windows that have just closed: the one starting n-1 steps back, or all that reach
        # the episode end.
        if terminated or truncated:
            self._in_episode = False
            closed = range(max(episode_start, step - self.n_step + 1), step + 1)
        else:
            first = step - self.n_step + 1
            closed = range(first, first + 1) if first >= episode_start else range(0)
        for transition in closed:
            self._mark_valid(transition, episode_start)

    def sample(self, batch_size: int) -> Batch:
        """Uniformly sample ``batch_size`` valid transitions (with replacement)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self._valid_count == 0:
            raise ValueError(
                f"the replay holds no complete transition yet ({self._write_count} slots written); "
                f"collect at least n_step={self.n_step} steps (or one finished episode) before sampling"
            )
        step = self._sample_slots(batch_size)
        episode_start = self._episode_start[step % self.capacity]

        # n-step window: step j counts while the episode has not ended before it.
        window = step[:, None] + np.arange(self.n_step)
        window_pos = window % self.capacity
        ended = self._terminated[window_pos] | self._truncated[window_pos]
        ended_before = np.zeros_like(ended)
        ended_before[:, 1:] = np.logical_or.accumulate(ended[:, :-1], axis=1)
        in_window = np.logical_and.accumulate(self._has_action[window_pos], axis=1) & ~ended_before
        steps_taken = in_window.sum(axis=1)
        powers = self.gamma ** np.arange(self.n_step)
        reward = np.where(in_window, self._reward[window_pos] * powers, 0.0).sum(axis=1)
        terminated = (self._terminated[window_pos] & in_window).any(axis=1)
        discount = np.where(terminated, 0.0, self.gamma ** steps_taken)
        cost = None
        if self.track_cost:
            cost = self._tensor(np.where(in_window, self._cost[window_pos] * powers, 0.0)
                                .sum(axis=1).astype(np.float32))

        return Batch(
            obs=self._gather_obs(step, episode_start),
            action=self._to_device(self._action, step % self.capacity).float(),
            reward=self._tensor(reward.astype(np.float32)),
            discount=self._tensor(discount.astype(np.float32)),
            next_obs=self._gather_obs(step + steps_taken, episode_start),
            cost=cost,
        )

    # ------------------------------------------------------------------ persistence API
    def flush(self) -> None:
        """Write the partly filled chunk now (e.g. at a checkpoint or a clean shutdown).

        It is rewritten, atomically, with more slots once it fills."""
        if self.directory is None or self._write_count == 0:
            return
        self._write_chunk((self._write_count - 1) // self.chunk_size, end=self._write_count)

    close = flush

    def state_dict(self) -> dict[str, Any]:
        """Sampler RNG state and counters for a checkpoint (the data lives in the chunk files)."""
        return {
            "rng": self._rng.bit_generator.state,
            "num_slots_written": self._write_count,
            "num_valid": self._valid_count,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the sampler RNG. The counters are informational: after a crash the disk
        may hold fewer slots than at the checkpoint (the lost chunk) or more (written later)."""
        self._rng.bit_generator.state = state["rng"]

    def load_from_disk(self) -> None:
        """Restore every slot this directory holds (the newest ``capacity`` of them).

        The next write must be ``reset(obs)``: an episode cut by the crash stays unfinished.
        Raises ``ReplayDataError`` naming the file if a needed chunk is missing or corrupt."""
        if self.directory is None:
            raise ValueError("load_from_disk() needs a buffer created with directory=...")
        if self._write_count:
            raise RuntimeError("load_from_disk() must be called on an empty buffer (before reset/add)")
        chunks = dict(storage.list_chunks(self.directory))
        self._unloaded_disk_data = False
        if not chunks:
            return
        last_index = max(chunks)
        last = self._read_chunk(chunks[last_index], last_index)
        total = last_index * self.chunk_size + len(last["reward"])
        oldest = max(0, total - self.capacity)
        for index in range(oldest // self.chunk_size, last_index + 1):
            if index not in chunks:
                raise storage.ReplayDataError(
                    f"replay chunk {storage.chunk_path(self.directory, index)} is missing but newer chunks "
                    "exist; restore it, or move the chunks before it elsewhere and load the rest"
                )
            data = last if index == last_index else self._read_chunk(chunks[index], index)
            if index != last_index and len(data["reward"]) != self.chunk_size:
                raise storage.ReplayDataError(
                    f"replay chunk {chunks[index]} has {len(data['reward'])} slots but is not the newest "
                    f"chunk, so it must be full ({self.chunk_size}); the directory was altered"
                )
            start = index * self.chunk_size
            slots = np.arange(start, start + len(data["reward"]))
            keep = slots >= oldest
            position = slots[keep] % self.capacity
            for key in self._fields:
                self._obs[key][position] = data[f"obs__{key}"][keep]
            self._action[position] = data["action"][keep]
            self._reward[position] = data["reward"][keep]
            if self.track_cost:
                self._cost[position] = data["cost"][keep]
            self._terminated[position] = data["terminated"][keep]
            self._truncated[position] = data["truncated"][keep]
            self._has_action[position] = data["has_action"][keep]
            self._episode_start[position] = data["episode_start"][keep]
        self._write_count = total
        # The newest slot's successor did not reach the disk: its step is not recorded.
        self._has_action[(total - 1) % self.capacity] = False
        self._in_episode = False
        self._recompute_valid()

    @classmethod
    def load(
        cls,
        directory: str | Path,
        capacity: int | None = None,
        n_step: int | None = None,
        gamma: float | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        observation_space: spaces.Space | None = None,
        action_space: spaces.Box | None = None,
    ) -> "ReplayBuffer":
        """Rebuild a buffer from ``directory``. Settings left as None come from its metadata;
        spaces passed in must equal the saved ones."""
        directory = Path(directory)
        metadata = storage.read_metadata(directory)
        if metadata is None:
            raise storage.ReplayDataError(
                f"{directory / storage.METADATA_FILE} not found: {directory} is not a replay directory"
            )
        saved_obs = storage.spec_to_space(metadata["observation_space"])
        saved_action = storage.spec_to_space(metadata["action_space"])
        for name, given in (("observation_space", observation_space), ("action_space", action_space)):
            if given is not None and storage.space_to_spec(given) != metadata[name]:
                raise storage.ReplayDataError(
                    f"{name} {given} does not match the one saved in {directory} "
                    f"({metadata[name]}); load with the environment that wrote the data"
                )
        buffer = cls(
            saved_obs, saved_action,
            capacity=metadata["capacity"] if capacity is None else capacity,
            n_step=metadata["n_step"] if n_step is None else n_step,
            gamma=metadata["gamma"] if gamma is None else gamma,
            frame_stack=metadata["frame_stack"],
            directory=directory,
            chunk_size=metadata["chunk_size"],
            seed=seed,
            device=device,
            track_cost=metadata.get("track_cost", False),
        )
        buffer.load_from_disk()
        return buffer

    # ------------------------------------------------------------------ writing internals
    def _check_writable(self) -> None:
        if self._unloaded_disk_data:
            raise RuntimeError(
                f"replay directory {self.directory} already holds chunks: call load_from_disk() first to "
                "resume from them, or pass an empty directory (existing data is never overwritten)"
            )

    def _prepare_obs(self, obs, name: str) -> dict[str, np.ndarray]:
        """Validated copy-free views of ``obs`` as {key: array}; raises before any write."""
        if isinstance(self.observation_space, spaces.Box):
            items, labels = {_BOX_KEY: obs}, {_BOX_KEY: name}
        else:
            if not isinstance(obs, Mapping) or set(obs) != set(self._fields):
                got = sorted(obs) if isinstance(obs, Mapping) else type(obs).__name__
                raise ValueError(f"{name} must be a dict with keys {sorted(self._fields)}, got {got}")
            items, labels = obs, {key: f"{name}[{key!r}]" for key in obs}
        values = {}
        for key, field in self._fields.items():
            value = np.asarray(items[key])
            if value.shape != field.shape:
                raise ValueError(f"{labels[key]} has shape {value.shape}, expected {field.shape}")
            if np.issubdtype(field.dtype, np.integer) and value.dtype != field.dtype:
                # Pixels: a float or wider int array would be cast (and wrap) silently.
                raise ValueError(f"{labels[key]} has dtype {value.dtype}; pass {field.dtype} as the space says")
            if np.issubdtype(value.dtype, np.inexact) and not np.all(np.isfinite(value)):
                raise ValueError(f"{labels[key]} contains NaN/inf")
            values[key] = value
        return values

    def _checked_cost(self, cost: float | None) -> float | None:
        if not self.track_cost:
            if cost is not None:
                raise ValueError("add() got a cost but the buffer does not store costs: build it with "
                                 "ReplayBuffer(..., track_cost=True)")
            return None
        if cost is None:
            raise ValueError("this buffer tracks costs (track_cost=True): pass add(..., cost=<the step's "
                             "cost>), e.g. info['cost'] from the task")
        cost = float(cost)
        if not math.isfinite(cost):
            raise ValueError(f"cost is {cost}; it must be finite")
        return cost

    def _check_continues_stack(self, values: dict[str, np.ndarray], episode_start: int) -> None:
        """The older frames of a new stack must be the frames already stored for this episode."""
        for key, field in self._fields.items():
            if field.stack == 1:
                continue
            new_slot = self._write_count
            older = np.maximum(episode_start, new_slot - field.stack + 1 + np.arange(field.stack - 1))
            expected = self._obs[key][older % self.capacity]
            given = values[key].reshape(field.stack, *field.frame_shape)[:-1]
            if not np.array_equal(given, expected):
                raise ValueError(
                    f"next_obs[{key!r}] is not the previous frame stack shifted by one new frame; the replay "
                    f"expects naive stacking of {field.stack} frames, oldest first (check frame_stack)"
                )

    def _clear_step(self, position: int) -> None:
        self._action[position] = 0
        self._reward[position] = 0.0
        if self.track_cost:
            self._cost[position] = 0.0
        self._terminated[position] = False
        self._truncated[position] = False
        self._has_action[position] = False

    def _write_slot(self, values: dict[str, np.ndarray], episode_start: int) -> None:
        slot = self._write_count
        # Chunk c is final once its last slot's step is known, i.e. now that the first slot of
        # chunk c+1 is about to be written. Writing it before touching the ring means a failed
        # write changes nothing, and a kill during it loses exactly that one chunk.
        if self.directory is not None and slot % self.chunk_size == 0 and slot > 0:
            self._write_chunk(slot // self.chunk_size - 1, end=slot)
        position = slot % self.capacity
        if slot >= self.capacity:
            self._invalidate_overwritten(slot - self.capacity)
        for key, field in self._fields.items():
            # Only the newest frame of a stack (its last channels) is stored.
            self._obs[key][position] = values[key][-field.frame_shape[0]:] if field.stack > 1 else values[key]
        self._clear_step(position)
        self._episode_start[position] = episode_start
        self._write_count = slot + 1

    def _invalidate_overwritten(self, lost_slot: int) -> None:
        """Drop transitions that read ``lost_slot``: itself, and later ones of its episode whose
        frame stack still reaches back to it."""
        for transition in range(lost_slot, min(lost_slot + self._max_stack, self._write_count)):
            position = transition % self.capacity
            if transition > lost_slot and self._episode_start[position] > lost_slot:
                break
            if self._valid[position]:
                self._valid[position] = False
                self._valid_count -= 1

    def _mark_valid(self, transition: int, episode_start: int) -> None:
        oldest_needed = max(episode_start, transition - self._max_stack + 1)
        if oldest_needed < self._write_count - self.capacity:
            return  # part of its frame stack is already overwritten
        position = transition % self.capacity
        if not self._valid[position]:
            self._valid[position] = True
            self._valid_count += 1

    def _recompute_valid(self) -> None:
        """Validity of every slot from the stored arrays (the incremental rule, vectorised)."""
        held = min(self._write_count, self.capacity)
        oldest = self._write_count - held
        step = np.arange(oldest, self._write_count)
        position = step % self.capacity
        oldest_needed = np.maximum(self._episode_start[position], step - self._max_stack + 1)
        alive = np.ones(held, bool)
        complete = np.zeros(held, bool)
        for offset in range(self.n_step):
            later = step + offset
            later_position = later % self.capacity
            alive &= (later < self._write_count) & self._has_action[later_position]
            ended = alive & (self._terminated[later_position] | self._truncated[later_position])
            complete |= ended
            alive &= ~ended
        complete |= alive
        self._valid[:] = False
        self._valid[position] = complete & (oldest_needed >= oldest)
        self._valid_count = int(self._valid.sum())

    def _chunk_arrays(self, index: int, end: int) -> dict[str, np.ndarray]:
        start = index * self.chunk_size
        position = np.arange(start, end) % self.capacity
        arrays = {f"obs__{key}": store[position] for key, store in self._obs.items()}
        arrays.update(
            action=self._action[position], reward=self._reward[position],
            terminated=self._terminated[position], truncated=self._truncated[position],
            has_action=self._has_action[position], episode_start=self._episode_start[position],
            first_slot=np.array(start, np.int64),
        )
        if self.track_cost:
            arrays["cost"] = self._cost[position]
        return arrays

    def _write_chunk(self, index: int, end: int) -> None:
        storage.write_chunk(storage.chunk_path(self.directory, index), self._chunk_arrays(index, end))

    def _read_chunk(self, path: Path, index: int) -> dict[str, np.ndarray]:
        data = storage.read_chunk(path)
        expected = self._chunk_arrays(index, index * self.chunk_size + 1)  # shapes/dtypes of one slot
        for name, reference in expected.items():
            if name not in data:
                raise storage.ReplayDataError(f"replay chunk {path} lacks the array {name!r}")
            array = data[name]
            if array.dtype != reference.dtype or array.shape[1:] != reference.shape[1:]:
                raise storage.ReplayDataError(
                    f"replay chunk {path}: {name!r} has dtype {array.dtype} shape {array.shape}, expected "
                    f"dtype {reference.dtype} and per-slot shape {reference.shape[1:]}"
                )
        rows = len(data["reward"])
        first_slot = index * self.chunk_size
        if (int(data["first_slot"]) != first_slot or not 0 < rows <= self.chunk_size
                or any(len(data[name]) != rows for name in expected if name != "first_slot")
                or np.any(data["episode_start"] > np.arange(first_slot, first_slot + rows))):
            raise storage.ReplayDataError(f"replay chunk {path} is inconsistent (slot range or episode starts)")
        return data

    # ------------------------------------------------------------------ sampling internals
    def _sample_slots(self, batch_size: int) -> np.ndarray:
        """Global indices of ``batch_size`` uniformly drawn valid transitions."""
        held = min(self._write_count, self.capacity)
        if self._valid_count >= _REJECTION_MIN_VALID_SHARE * held:
            position = self._rng.integers(0, held, batch_size)
            rejected = np.flatnonzero(~self._valid[position])
            while rejected.size:
                position[rejected] = self._rng.integers(0, held, rejected.size)
                rejected = rejected[~self._valid[position[rejected]]]
        else:
            position = self._rng.choice(np.flatnonzero(self._valid[:held]), batch_size)
        newest = self._write_count - 1
        return newest - (newest - position) % self.capacity

    def _gather_obs(self, step: np.ndarray, episode_start: np.ndarray):
        out = {}
        for key, field in self._fields.items():
            if field.stack == 1:
                out[key] = self._to_device(self._obs[key], step % self.capacity)
            else:
                frames = np.maximum(episode_start[:, None], step[:, None] - field.stack + 1 + np.arange(field.stack))
                stacked = self._to_device(self._obs[key], frames % self.capacity)  # B x k x C x H x W
                out[key] = stacked.reshape(len(step), *field.shape)
        return out[_BOX_KEY] if isinstance(self.observation_space, spaces.Box) else out

    def _to_device(self, store: np.ndarray, index: np.ndarray) -> torch.Tensor:
        """``store[index]`` as a tensor on the device: gathered straight into a (for CUDA pinned)
        host tensor, then one asynchronous copy to the GPU (none on CPU)."""
        host = torch.empty(index.shape + store.shape[1:], dtype=torch.from_numpy(store[:0]).dtype,
                           pin_memory=self._pin_memory)
        # mode="clip" (indices are always in range) lets np.take write into `out` unbuffered.
        np.take(store, index, axis=0, out=host.numpy(), mode="clip")
        return host.to(self.device, non_blocking=self._pin_memory)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
