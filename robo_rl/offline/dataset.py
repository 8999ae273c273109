"""D4RL-style datasets on the replay's own on-disk format.

A dataset is a replay directory (robo_rl/replay/storage.py: metadata.json + append-only chunks,
one slot per observation, the step taken from it beside it) plus ``dataset.json``:

    task              the robo_rl task it was collected on (e.g. gym/Hopper-v5)
    kind              random | medium | medium-replay | expert | medium-expert | scripted | imported | ...
    random_return     mean return of the uniform random policy     (normalised score 0)
    expert_return     mean return of the expert policy             (normalised score 100)
    episodes, transitions, returns: counts and per-episode returns of the complete episodes
    complete          false while `robo-rl collect` is still writing (it resumes from there)
    source            how it was made (policy, seeds, the collect config)

Data carries facts (observations, actions, rewards, terminations, truncations); the learner that
samples it decides n_step and gamma (lessons.md 6). Opening a dataset for training
(``open_dataset``) checks it against the task's spaces and scans every chunk for NaN/inf first,
naming the field and the row; nothing here ever writes into a dataset it reads.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
from gymnasium import spaces

from robo_rl.atomic import write_atomically
from robo_rl.replay import ReplayBuffer, ReplayDataError
from robo_rl.replay import storage

DATASET_FILE = "dataset.json"
DATASET_FORMAT = "robo_rl-dataset"
DATASET_FORMAT_VERSION = 1
BOX_KEY = "obs"  # the replay stores a plain Box observation under this key (robo_rl.replay.buffer)


class DatasetError(ReplayDataError):
    """A dataset is missing, malformed, or does not fit the task it is used with."""


@dataclass
class DatasetInfo:
    task: str
    kind: str
    random_return: float | None = None
    expert_return: float | None = None
    episodes: int = 0
    transitions: int = 0
    returns: list[float] = field(default_factory=list)
    complete: bool = False
    source: dict[str, Any] = field(default_factory=dict)

    def normalized_score(self, episode_return: float) -> float | None:
        """100 * (R - R_random) / (R_expert - R_random): 0 = random policy, 100 = expert (D4RL)."""
        if self.random_return is None or self.expert_return is None:
            return None
        span = self.expert_return - self.random_return
        if span == 0:
            return None
        return 100.0 * (episode_return - self.random_return) / span

    def summary(self) -> str:
        returns = np.asarray(self.returns, np.float64)
        spread = (f"episode return {returns.mean():.1f} +/- {returns.std():.1f} (min {returns.min():.1f}, "
                  f"max {returns.max():.1f})" if returns.size else "no complete episode")
        score = self.normalized_score(float(returns.mean())) if returns.size else None
        references = (f"reference returns: random {_fmt(self.random_return)}, expert {_fmt(self.expert_return)}"
                      + (f"; mean episode = normalised score {score:.1f}" if score is not None else ""))
        return (f"{self.task} {self.kind}: {self.transitions} transitions in {self.episodes} episodes"
                f"{'' if self.complete else ' (collection not finished)'}\n  {spread}\n  {references}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def write_info(directory: Path, info: DatasetInfo) -> None:
    payload = {"format": DATASET_FORMAT, "format_version": DATASET_FORMAT_VERSION, **asdict(info)}
    text = json.dumps(payload, indent=2, sort_keys=True).encode()
    write_atomically(Path(directory) / DATASET_FILE, lambda handle: handle.write(text))


def read_info(directory: str | Path) -> DatasetInfo:
    directory = Path(directory)
    path = directory / DATASET_FILE
    if not directory.is_dir():
        raise DatasetError(f"dataset {directory} does not exist; make one with `robo-rl collect` or "
                           f"`robo-rl dataset import-minari`")
    if not path.is_file():
        raise DatasetError(f"{directory} has no {DATASET_FILE}: it is not a robo_rl dataset (a bare replay "
                           f"directory can be mixed in with replay.demo_dir instead)")
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path} is unreadable ({exc}); restore it from a copy") from exc
    if payload.get("format") != DATASET_FORMAT or payload.get("format_version", 0) > DATASET_FORMAT_VERSION:
        raise DatasetError(f"{path} is not a robo_rl dataset of format version <= {DATASET_FORMAT_VERSION}")
    known = {f for f in DatasetInfo.__dataclass_fields__}
    return DatasetInfo(**{key: value for key, value in payload.items() if key in known})


# ---------------------------------------------------------------------------------------------
# Reading episodes


@dataclass
class Episode:
    """One episode: T + 1 observations (stacked as the env returns them), T of everything else."""
    observations: np.ndarray | dict[str, np.ndarray]
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray

    def __len__(self) -> int:
        return len(self.actions)

    @property
    def complete(self) -> bool:
        return bool(len(self) and (self.terminations[-1] or self.truncations[-1]))


def _metadata(directory: Path) -> dict[str, Any]:
    metadata = storage.read_metadata(directory)
    if metadata is None:
        raise DatasetError(f"{directory / storage.METADATA_FILE} not found: {directory} holds no transitions")
    return metadata


def read_slots(directory: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metadata, every chunk's arrays concatenated in slot order), read-only. A gap in the chunk
    sequence or a chunk that does not start where the previous ended is an error naming the file."""
    directory = Path(directory)
    metadata = _metadata(directory)
    chunks = storage.list_chunks(directory)
    if not chunks:
        raise DatasetError(f"dataset {directory} holds no chunk files (no transitions)")
    arrays: dict[str, list[np.ndarray]] = {}
    expected_first = 0
    for index, path in chunks:
        data = storage.read_chunk(path)
        first = int(data.get("first_slot", -1))
        if index * metadata["chunk_size"] != expected_first or first != expected_first:
            raise DatasetError(f"dataset {directory}: chunk {path.name} starts at slot {first}, expected "
                               f"{expected_first} (a chunk before it is missing or the files were renamed)")
        for name, value in data.items():
            if name != "first_slot":
                arrays.setdefault(name, []).append(value)
        expected_first += len(data["reward"])
    return metadata, {name: np.concatenate(parts) for name, parts in arrays.items()}


def _stack_frames(frames: np.ndarray, start: int, slots: np.ndarray, stack: int) -> np.ndarray:
    """Stacked observations of ``slots`` from stored newest frames (first frame repeated at reset)."""
    index = np.maximum(start, slots[:, None] - stack + 1 + np.arange(stack))
    stacked = frames[index]  # T x k x C x H x W
    return stacked.reshape(len(slots), stack * frames.shape[1], *frames.shape[2:])


def episodes_from_slots(metadata: dict[str, Any], slots: dict[str, np.ndarray],
                        complete_only: bool = True) -> Iterator[Episode]:
    """The episodes the slots hold, oldest first (an episode a crash cut short is skipped unless
    ``complete_only`` is False)."""
    observation_space = storage.spec_to_space(metadata["observation_space"])
    frame_stack = int(metadata.get("frame_stack", 1))
    keys = [key[len("obs__"):] for key in slots if key.startswith("obs__")]
    starts = slots["episode_start"]
    boundaries = np.flatnonzero(np.diff(starts)) + 1
    for first, end in zip(np.r_[0, boundaries], np.r_[boundaries, len(starts)]):
        index = np.arange(first, end)
        steps = index[slots["has_action"][index]]
        if len(steps) == 0:
            continue
        obs_index = np.arange(first, end)
        if len(obs_index) != len(steps) + 1 or steps[0] != first:
            continue  # its last observation is not on disk (cut by a crash)
        episode = Episode(
            observations={key: _observations(slots[f"obs__{key}"], first, obs_index, key,
                                             observation_space, frame_stack) for key in keys},
            actions=slots["action"][steps], rewards=slots["reward"][steps],
            terminations=slots["terminated"][steps], truncations=slots["truncated"][steps])
        if isinstance(observation_space, spaces.Box):
            episode.observations = episode.observations[BOX_KEY]
        if episode.complete or not complete_only:
            yield episode


def _observations(frames, first, obs_index, key, observation_space, frame_stack):
    box = observation_space if isinstance(observation_space, spaces.Box) else observation_space[key]
    stored = frames[obs_index]
    if frame_stack > 1 and len(box.shape) == 3 and stored.shape[1] != box.shape[0]:
        return _stack_frames(frames, first, obs_index, box.shape[0] // stored.shape[1])
    return stored


def read_episodes(directory: str | Path, complete_only: bool = True) -> Iterator[Episode]:
    metadata, slots = read_slots(directory)
    return episodes_from_slots(metadata, slots, complete_only)


# ---------------------------------------------------------------------------------------------
# Checking a dataset against a task


def _space_problems(what: str, saved: dict, given: dict) -> list[str]:
    if saved.get("type") != given.get("type"):
        return [f"{what} is a {saved.get('type')} in the dataset but a {given.get('type')} in the task"]
    if saved["type"] == "Dict":
        problems = []
        if set(saved["spaces"]) != set(given["spaces"]):
            problems.append(f"{what} keys are {sorted(saved['spaces'])} in the dataset, "
                            f"{sorted(given['spaces'])} in the task")
        for key in sorted(set(saved["spaces"]) & set(given["spaces"])):
            problems += _space_problems(f"{what}[{key!r}]", saved["spaces"][key], given["spaces"][key])
        return problems
    problems = []
    for part in ("shape", "dtype"):
        if saved[part] != given[part]:
            problems.append(f"{what} {part} is {saved[part]} in the dataset but {given[part]} in the task")
    return problems


def check_spaces(directory: Path, metadata: dict, observation_space, action_space, task: str) -> None:
    problems = (_space_problems("observations", metadata["observation_space"], storage.space_to_spec(observation_space))
                + _space_problems("actions", metadata["action_space"], storage.space_to_spec(action_space)))
    if problems:
        raise DatasetError(f"dataset {directory} does not fit task {task}: " + "; ".join(problems)
                           + ". Use a dataset collected on this task with the same settings (obs_type, "
                             "frame_stack, ...), or the task it was collected on")


def _row_location(slots: dict[str, np.ndarray], row: int) -> str:
    start = int(slots["episode_start"][row])
    episode = int(np.count_nonzero(np.diff(slots["episode_start"][:row + 1])))
    return f"row {row} (episode {episode}, step {row - start})"


def check_finite(directory: Path, slots: dict[str, np.ndarray]) -> None:
    """Every float field finite in the rows that are used (observations of every slot, actions and
    rewards of slots with a recorded step); the first bad row is named."""
    used = slots["has_action"]
    for name, values in slots.items():
        if not np.issubdtype(values.dtype, np.floating):
            continue
        flat = values.reshape(len(values), -1)
        bad_rows = ~np.isfinite(flat).all(axis=1)
        if not name.startswith("obs__"):
            bad_rows &= used
        if bad_rows.any():
            row = int(np.flatnonzero(bad_rows)[0])
            label = (f"observations[{name[5:]!r}]" if name.startswith("obs__") and name != f"obs__{BOX_KEY}"
                     else "observations" if name.startswith("obs__") else
                     {"action": "actions", "reward": "rewards", "cost": "costs"}.get(name, name))
            raise DatasetError(f"dataset {directory}: {label} holds NaN/inf at {_row_location(slots, row)} "
                               f"({int(bad_rows.sum())} bad rows in all). The file was not changed; fix or "
                               f"drop those episodes (export, edit, import) before training on it")


def validate_dataset(directory: str | Path, observation_space, action_space, task: str) -> DatasetInfo:
    """The dataset's info after checking its spaces against the task and every value for NaN/inf."""
    directory = Path(directory)
    info = read_info(directory)
    metadata = _metadata(directory)
    check_spaces(directory, metadata, observation_space, action_space, task)
    _, slots = read_slots(directory)
    check_finite(directory, slots)
    if not info.complete:
        raise DatasetError(f"dataset {directory} is still being collected (or its collection was stopped): "
                           f"finish it by running the same `robo-rl collect` again (it resumes)")
    if info.task != task:
        raise DatasetError(f"dataset {directory} was collected on {info.task}, this run's task is {task}; "
                           f"pass task={info.task} or a dataset of {task}")
    return info


def open_dataset(directory: str | Path, observation_space, action_space, task: str, n_step: int,
                 gamma: float, seed: int, device="cpu") -> tuple[ReplayBuffer, DatasetInfo]:
    """A validated dataset as a read-only ReplayBuffer sampled with the learner's n_step and gamma."""
    directory = Path(directory)
    info = validate_dataset(directory, observation_space, action_space, task)
    metadata = _metadata(directory)
    slots_on_disk = sum(len(storage.read_chunk(path)["reward"]) for _, path in storage.list_chunks(directory))
    buffer = ReplayBuffer.load(directory, capacity=max(int(metadata["capacity"]), slots_on_disk + 1),
                               n_step=n_step, gamma=gamma, seed=seed, device=device,
                               observation_space=observation_space, action_space=action_space)
    return buffer, info


def observation_stats(directory: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of the observations of every recorded transition (TD3+BC's state normaliser);
    Box observations only."""
    metadata, slots = read_slots(directory)
    key = f"obs__{BOX_KEY}"
    if key not in slots or metadata["observation_space"]["type"] != "Box":
        raise DatasetError(f"{directory}: observation statistics need a flat Box observation (state), the dataset "
                           f"has {metadata['observation_space']['type']} observations")
    states = slots[key][slots["has_action"]].astype(np.float64)
    return states.mean(axis=0), states.std(axis=0)


# ---------------------------------------------------------------------------------------------
# Writing


def episode_return(episode: Episode) -> float:
    return float(np.sum(episode.rewards, dtype=np.float64))


def _obs_at(observations, t: int):
    if isinstance(observations, dict):
        return {key: value[t] for key, value in observations.items()}
    return observations[t]


def append_episode(buffer: ReplayBuffer, episode: Episode) -> None:
    buffer.reset(_obs_at(episode.observations, 0))
    for t in range(len(episode)):
        buffer.add(episode.actions[t], float(episode.rewards[t]), _obs_at(episode.observations, t + 1),
                   bool(episode.terminations[t]), bool(episode.truncations[t]))


def new_dataset_buffer(directory: Path, observation_space, action_space, frame_stack: int,
                       chunk_size: int, capacity: int) -> ReplayBuffer:
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise DatasetError(f"{directory} already exists and is not empty; choose a new out= path "
                           f"(existing data is never overwritten)")
    return ReplayBuffer(observation_space, action_space, capacity=capacity, frame_stack=frame_stack,
                        directory=directory, chunk_size=chunk_size)


def write_dataset(directory: str | Path, episodes: Iterable[Episode], observation_space, action_space,
                  info: DatasetInfo, frame_stack: int = 1, chunk_size: int = 10_000) -> DatasetInfo:
    """A new dataset from ``episodes`` (import, concatenation). Info counts are recomputed from
    what was written; ``dataset.json`` goes last, so a crash leaves an incomplete dataset."""
    episodes = list(episodes)
    slots = sum(len(e) + 1 for e in episodes)
    buffer = new_dataset_buffer(Path(directory), observation_space, action_space, frame_stack,
                                chunk_size, capacity=max(slots + 1, chunk_size + 1))
    info.returns, info.transitions = [], 0
    for episode in episodes:
        append_episode(buffer, episode)
        info.returns.append(episode_return(episode))
        info.transitions += len(episode)
    buffer.flush()
    info.episodes, info.complete = len(info.returns), True
    write_info(Path(directory), info)
    return info


def concatenate(sources: list[str | Path], out: str | Path, kind: str) -> DatasetInfo:
    """``out`` = the complete episodes of ``sources`` in order (medium-expert = medium + expert).
    Sources must share task, spaces and reference returns."""
    if len(sources) < 2:
        raise DatasetError("concatenation needs at least two source datasets")
    infos = [read_info(source) for source in sources]
    metadatas = [_metadata(Path(source)) for source in sources]
    for source, info, metadata in zip(sources[1:], infos[1:], metadatas[1:]):
        if info.task != infos[0].task:
            raise DatasetError(f"cannot concatenate {sources[0]} ({infos[0].task}) and {source} ({info.task})")
        for key in ("observation_space", "action_space", "frame_stack"):
            if metadata[key] != metadatas[0][key]:
                raise DatasetError(f"cannot concatenate {sources[0]} and {source}: their {key} differ")
        for key in ("random_return", "expert_return"):
            a, b = getattr(infos[0], key), getattr(info, key)
            if (a is None) != (b is None) or (a is not None and not math.isclose(a, b, rel_tol=1e-9)):
                raise DatasetError(f"cannot concatenate {sources[0]} and {source}: their {key} differ ({a} vs "
                                   f"{b}); collect both with the same reference (reference.expert=...)")
    unfinished = [str(s) for s, info in zip(sources, infos) if not info.complete]
    if unfinished:
        raise DatasetError(f"source datasets still being collected: {', '.join(unfinished)}")

    def all_episodes():
        for source in sources:
            yield from read_episodes(source)

    info = DatasetInfo(task=infos[0].task, kind=kind, random_return=infos[0].random_return,
                       expert_return=infos[0].expert_return,
                       source={"concatenated": [str(Path(s)) for s in sources]})
    return write_dataset(out, all_episodes(), storage.spec_to_space(metadatas[0]["observation_space"]),
                         storage.spec_to_space(metadatas[0]["action_space"]), info,
                         frame_stack=int(metadatas[0]["frame_stack"]))
