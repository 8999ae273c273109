"""Atomic checkpoints: write to a temp file in the same directory, fsync, then rename.

A reader therefore sees either the previous complete checkpoint or the new complete one, never
a half-written file, even if the process is killed mid-save. Loading verifies a format tag and
turns every failure into a `CheckpointError` that names the file and what to do about it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from robo_rl.atomic import write_atomically

FORMAT = "robo_rl-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint could not be read or does not fit the run that asked for it."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Serialise `payload` to `path` atomically and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(path, lambda handle: torch.save(
        {"format": FORMAT, "format_version": FORMAT_VERSION, **payload}, handle))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist; pass checkpoint=PATH to an existing .pt file "
                              f"(runs keep them in <run dir>/checkpoints/)")
    try:
        # weights_only=False: the payload holds numpy RNG states and config dicts we wrote ourselves.
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises several types for truncated/corrupt zips
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); it is probably truncated or "
            f"corrupt. Nothing was overwritten: use an older checkpoint from {path.parent} "
            f"(checkpoints are written atomically, so the previous one is intact)") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a robo_rl checkpoint (missing format tag '{FORMAT}')")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer robo_rl (format {payload['format_version']} > "
                              f"{FORMAT_VERSION}); upgrade robo_rl to read it")
    return payload
