"""On-disk layout of a persistent replay buffer.

A replay directory holds

    metadata.json          spaces, dtypes, n_step, gamma, frame_stack, chunk_size, capacity
    chunk_00000000.npz     slots [0, chunk_size)
    chunk_00000001.npz     slots [chunk_size, 2 * chunk_size)
    ...

Each chunk is an uncompressed ``.npz`` with one array per slot field (see ``ReplayBuffer``).
Every file is written atomically: to a temporary file in the same directory, flushed and
fsynced, then ``os.replace``d onto its final name, so a reader only ever sees a whole old
file or a whole new file. Nothing here ever deletes a file.

Reload policy: a chunk that cannot be read, or whose arrays do not match the metadata, raises
``ReplayDataError`` naming the file; nothing is skipped silently. A ``.chunk_*.npz.tmp`` left by
a process killed mid-write is ignored (it is replaced when that chunk is written again). One
writer per directory: two processes appending to the same directory is not supported.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from robo_rl.atomic import fsync_directory, write_atomically

METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1
_CHUNK_PATTERN = re.compile(r"^chunk_(\d{8})\.npz$")


class ReplayDataError(RuntimeError):
    """A replay directory is unreadable, incomplete or does not match the buffer."""


def chunk_path(directory: Path, index: int) -> Path:
    return directory / f"chunk_{index:08d}.npz"


def list_chunks(directory: Path) -> list[tuple[int, Path]]:
    """Chunk files sorted by index (temporary files from an interrupted write are ignored)."""
    found = []
    for entry in directory.iterdir():
        match = _CHUNK_PATTERN.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry))
    return sorted(found)


def write_chunk(path: Path, arrays: dict[str, np.ndarray]) -> None:
    write_atomically(path, lambda handle: np.savez(handle, **arrays))


def read_chunk(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as error:
        raise ReplayDataError(
            f"replay chunk {path} is truncated or corrupt ({type(error).__name__}: {error}). "
            "Chunks are written atomically, so this points to disk damage or an outside edit: "
            "move the file out of the directory to load the chunks before it (it is not deleted)."
        ) from error


def write_metadata(directory: Path, metadata: dict[str, Any]) -> None:
    text = json.dumps(metadata, indent=2, sort_keys=True).encode()
    write_atomically(directory / METADATA_FILE, lambda handle: handle.write(text))


def read_metadata(directory: Path) -> dict[str, Any] | None:
    path = directory / METADATA_FILE
    if not path.exists():
        return None
    try:
        metadata = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ReplayDataError(f"replay metadata {path} is unreadable: {error}") from error
    if metadata.get("format_version") != FORMAT_VERSION:
        raise ReplayDataError(
            f"replay metadata {path} has format_version {metadata.get('format_version')!r}; "
            f"this robo_rl reads version {FORMAT_VERSION}"
        )
    return metadata


def _bound_to_json(bound: np.ndarray) -> Any:
    # Pixel boxes have one bound for ~20k entries: store the scalar when they are all equal.
    flat = np.asarray(bound, dtype=np.float64).ravel()
    if flat.size and np.all(flat == flat[0]):
        return float(flat[0])
    return flat.tolist()


def space_to_spec(space: spaces.Space) -> dict[str, Any]:
    """JSON description of a Box or a (flat) Dict of Boxes."""
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": np.dtype(space.dtype).name,
            "low": _bound_to_json(space.low),
            "high": _bound_to_json(space.high),
        }
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {key: space_to_spec(sub) for key, sub in space.spaces.items()}}
    raise TypeError(
        f"replay supports Box or Dict-of-Box spaces, got {type(space).__name__}; "
        "flatten or wrap the environment so its spaces are Box/Dict"
    )


def spec_to_space(spec: dict[str, Any]) -> spaces.Space:
    if spec["type"] == "Box":
        shape = tuple(spec["shape"])
        dtype = np.dtype(spec["dtype"])
        low = np.broadcast_to(np.asarray(spec["low"], dtype=np.float64), shape) if shape else spec["low"]
        high = np.broadcast_to(np.asarray(spec["high"], dtype=np.float64), shape) if shape else spec["high"]
        return spaces.Box(low=np.asarray(low, dtype), high=np.asarray(high, dtype), shape=shape, dtype=dtype)
    if spec["type"] == "Dict":
        return spaces.Dict({key: spec_to_space(sub) for key, sub in spec["spaces"].items()})
    raise ReplayDataError(f"unknown space type {spec['type']!r} in replay metadata")
