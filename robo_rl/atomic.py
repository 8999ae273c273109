"""Crash-safe file writes: write a temp file in the target's directory, fsync it, rename it over
the target, fsync the directory. A reader sees the old complete file or the new complete one."""
from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Callable

TMP_SUFFIX = ".tmp"


def fsync_directory(directory: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(path: Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write(handle)` on a temp file next to `path`, then rename it to `path`."""
    path = Path(path)
    tmp_path = path.with_name(f".{path.name}{TMP_SUFFIX}")
    try:
        with open(tmp_path, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path
