"""mp4 writing through OpenCV (no ffmpeg binary needed: opencv-python-headless bundles a codec)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np


def write_mp4(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: float = 30.0) -> Path:
    """Write RGB uint8 frames (H x W x 3) to `path` atomically (temp file, then rename)."""
    import cv2

    path = Path(path)
    if len(frames) == 0:
        raise ValueError(f"no frames to write to {path}")
    height, width = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV could not open an mp4 writer for {path}; check opencv-python-headless")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    os.replace(tmp, path)
    return path
