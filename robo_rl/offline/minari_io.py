"""Import from and export to Minari 0.5 (the Farama successor of D4RL), so labs can bring
D4RL-equivalent datasets downloaded elsewhere and share robo_rl's with other tools.

Needs ``pip install 'robo_rl[offline]'`` (minari with its HDF5 backend). Minari's ``[create]``
extra pulls jax; robo_rl does not need it: ``create_dataset_from_buffers`` works without it when
the reference returns are given, as robo_rl always gives them.

Reference returns travel as Minari's ``ref_min_score`` / ``ref_max_score`` (what
``minari.get_normalized_score`` reads); the robo_rl task and kind as ``robo_rl_task`` /
``robo_rl_kind``. ``root`` is a Minari datasets root (default: Minari's own,
``$MINARI_DATASETS_PATH`` or ~/.minari/datasets); nothing is downloaded.
"""
from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
from gymnasium import spaces

from robo_rl.offline.dataset import (DatasetError, DatasetInfo, Episode, read_episodes, read_info,
                                     write_dataset)
from robo_rl.replay.storage import read_metadata, spec_to_space

INSTALL_HINT = "pip install 'robo_rl[offline]' (minari with HDF5; not minari[create], which pulls jax)"


def _minari():
    try:
        import minari
    except ImportError as exc:
        raise DatasetError(f"Minari import/export needs minari: {INSTALL_HINT}") from exc
    return minari


@contextlib.contextmanager
def _root(root: str | Path | None):
    """Minari reads its datasets root from the environment; set it for the call only."""
    if root is None:
        yield
        return
    previous = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(Path(root).resolve())
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = previous


def export_minari(dataset_dir: str | Path, dataset_id: str, root: str | Path | None = None) -> Path:
    """Write the complete episodes of a robo_rl dataset as the Minari dataset ``dataset_id``
    (``namespace/name-v0``); returns its directory."""
    minari = _minari()
    from minari.data_collector import EpisodeBuffer

    info = read_info(dataset_dir)
    metadata = read_metadata(Path(dataset_dir))
    observation_space = spec_to_space(metadata["observation_space"])
    action_space = spec_to_space(metadata["action_space"])
    buffers = [EpisodeBuffer(id=index, observations=episode.observations, actions=episode.actions,
                             rewards=episode.rewards, terminations=episode.terminations,
                             truncations=episode.truncations, infos={})
               for index, episode in enumerate(read_episodes(dataset_dir))]
    if not buffers:
        raise DatasetError(f"{dataset_dir} holds no complete episode to export")
    with _root(root), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # author/permalink/env_spec reminders
        try:
            dataset = minari.create_dataset_from_buffers(
                dataset_id, buffers, env=None, action_space=action_space, observation_space=observation_space,
                algorithm_name=f"robo_rl collect ({info.kind})", author="robo_rl",
                description=f"robo_rl dataset {Path(dataset_dir).name}: {info.task} {info.kind}",
                data_format="hdf5")
        except ValueError as exc:  # an existing id, a malformed id
            raise DatasetError(f"Minari refused dataset id {dataset_id!r}: {exc}") from exc
        dataset.storage.update_metadata({
            "ref_min_score": info.random_return, "ref_max_score": info.expert_return,
            "robo_rl_task": info.task, "robo_rl_kind": info.kind})
        return Path(dataset.storage.data_path).parent


def _minari_episodes(dataset) -> Iterator[Episode]:
    for episode in dataset.iterate_episodes():
        yield Episode(observations=episode.observations, actions=episode.actions,
                      rewards=np.asarray(episode.rewards), terminations=np.asarray(episode.terminations, bool),
                      truncations=np.asarray(episode.truncations, bool))


def _check_field(name: str, values, box: spaces.Box, episode: int, cast: bool):
    values = np.asarray(values)
    if values.shape[1:] != box.shape:
        raise DatasetError(f"Minari episode {episode}: {name} have shape {values.shape[1:]} per row, the task's "
                           f"space has {box.shape}; import it for the task it was recorded on")
    if values.dtype != box.dtype:
        floats = np.issubdtype(values.dtype, np.floating) and np.issubdtype(box.dtype, np.floating)
        if not (cast and floats):
            hint = " (pass --cast to convert floats, e.g. D4RL's float64 to float32)" if floats else ""
            raise DatasetError(f"Minari episode {episode}: {name} have dtype {values.dtype}, the task's space has "
                               f"{box.dtype}{hint}")
        values = values.astype(box.dtype)
    if np.issubdtype(values.dtype, np.floating):
        bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        if bad.any():
            raise DatasetError(f"Minari episode {episode}: {name} hold NaN/inf at row {int(np.flatnonzero(bad)[0])}; "
                               f"nothing was imported")
    return values


def import_minari(dataset_id: str, out: str | Path, task: str, observation_space, action_space,
                  root: str | Path | None = None, frame_stack: int = 1, cast: bool = False,
                  random_return: float | None = None, expert_return: float | None = None) -> DatasetInfo:
    """A robo_rl dataset at ``out`` from the local Minari dataset ``dataset_id``, checked field by
    field against the task's spaces (shape, dtype, NaN/inf) before anything is written."""
    minari = _minari()
    with _root(root):
        try:
            dataset = minari.load_dataset(dataset_id)
        except (FileNotFoundError, ValueError) as exc:
            raise DatasetError(f"Minari dataset {dataset_id!r} not found locally ({exc}); robo_rl downloads "
                               f"nothing: `minari download` it elsewhere and copy the datasets root here") from exc
        metadata = dataset.storage.metadata
        checked = []
        for index, episode in enumerate(_minari_episodes(dataset)):
            if isinstance(observation_space, spaces.Dict):
                if not isinstance(episode.observations, dict) or set(episode.observations) != set(observation_space.spaces):
                    raise DatasetError(f"Minari episode {index}: observations are not a dict with keys "
                                       f"{sorted(observation_space.spaces)}")
                episode.observations = {key: _check_field(f"observations[{key!r}]", value, observation_space[key],
                                                          index, cast)
                                        for key, value in episode.observations.items()}
            else:
                episode.observations = _check_field("observations", episode.observations, observation_space, index, cast)
            episode.actions = _check_field("actions", episode.actions, action_space, index, cast)
            episode.rewards = _check_field("rewards", episode.rewards.astype(np.float64),
                                           spaces.Box(-np.inf, np.inf, (), np.float64), index, cast)
            if len(episode.observations if not isinstance(episode.observations, dict)
                   else next(iter(episode.observations.values()))) != len(episode.actions) + 1:
                raise DatasetError(f"Minari episode {index}: expected {len(episode.actions) + 1} observations for "
                                   f"{len(episode.actions)} actions")
            checked.append(episode)
    stored_task = metadata.get("robo_rl_task")
    if stored_task is not None and stored_task != task:
        raise DatasetError(f"Minari dataset {dataset_id} was exported from robo_rl task {stored_task}, not {task}")
    info = DatasetInfo(
        task=task, kind=str(metadata.get("robo_rl_kind", "imported")),
        random_return=random_return if random_return is not None else _optional_float(metadata.get("ref_min_score")),
        expert_return=expert_return if expert_return is not None else _optional_float(metadata.get("ref_max_score")),
        source={"minari_id": dataset_id, "minari_version": str(metadata.get("minari_version"))})
    return write_dataset(out, checked, observation_space, action_space, info, frame_stack=frame_stack)


def _optional_float(value) -> float | None:
    return None if value is None else float(value)
