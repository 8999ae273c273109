"""contact_maze: guide the peg through a U-shaped slot maze on the table, in contact with its
walls (the setting of "Towards Passive Safe RL": a peg exploring a maze under a Cartesian
impedance controller). The workspace box keeps the peg tip below the wall tops, so the peg
cannot leave the slot; the policy must follow it round both corners to the goal."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robo_rl.tasks.base import ArmTask, ArmTaskConfig

# Slot centre line in the maze frame (x, y), metres; scene_contact_maze.xml builds the walls
# around it (32 mm wide channels, 30 mm high walls).
MAZE_PATH = np.array([(-0.06, -0.09), (-0.06, 0.09), (0.06, 0.09), (0.06, -0.09)])


def path_progress(point: np.ndarray, path: np.ndarray) -> tuple[float, float]:
    """(arc length of the closest point on the polyline, distance to it)."""
    best_s, best_d, s0 = 0.0, np.inf, 0.0
    for a, b in zip(path[:-1], path[1:]):
        seg = b - a
        length = float(np.linalg.norm(seg))
        t = float(np.clip((point - a) @ seg / length**2, 0.0, 1.0))
        dist = float(np.linalg.norm(point - (a + t * seg)))
        if dist < best_d:
            best_s, best_d = s0 + t * length, dist
        s0 += length
    return best_s, best_d


def path_point(s: float, path: np.ndarray) -> np.ndarray:
    """Point at arc length s along the polyline (clamped to its ends)."""
    for a, b in zip(path[:-1], path[1:]):
        length = float(np.linalg.norm(b - a))
        if s <= length:
            return a + max(s, 0.0) / length * (b - a)
        s -= length
    return path[-1].copy()


def path_length(path: np.ndarray) -> float:
    return float(np.sum(np.linalg.norm(np.diff(path, axis=0), axis=1)))


@dataclass
class ContactMazeConfig(ArmTaskConfig):
    success_threshold: float = 0.015      # path distance to the goal (m)
    maze_origin: tuple[float, float] = (0.5, 0.0)   # scene's "maze" body position
    start_progress: tuple[float, float] = (0.0, 0.04)  # start arc length range along the path
    start_lateral: float = 0.004          # start offset across the channel, +- (m)
    start_height: float = 0.012           # TCP (peg tip) height at the start (m)
    # Peg tip box: inside the maze's outer walls, tip between 8 and 20 mm above the table
    # (walls are 30 mm high), so the peg stays in the slot.
    workspace_low: tuple[float, float, float] = (0.43, -0.1, 0.008)
    workspace_high: tuple[float, float, float] = (0.57, 0.1, 0.02)
    script_lookahead: float = 0.03        # scripted policy aims this far ahead on the path (m)


class ContactMaze(ArmTask):
    SCENE = "contact_maze"
    TOOL = "peg"
    Config = ContactMazeConfig
    TASK_OBS_DIM = 4  # goal - TCP, progress along the path (0..1)

    def _bind_ids(self):
        super()._bind_ids()
        self.path = MAZE_PATH + np.asarray(self.config.maze_origin)
        self.total_length = path_length(self.path)
        self.goal = np.array([*self.path[-1], self.config.start_height])
        self._progress_cache: tuple[np.ndarray, tuple[float, float]] | None = None

    def _sample_episode(self, rng):
        c = self.config
        s = rng.uniform(*c.start_progress)
        start = path_point(s, self.path)
        direction = self.path[1] - self.path[0]
        normal = np.array([-direction[1], direction[0]]) / np.linalg.norm(direction)
        start = start + rng.uniform(-c.start_lateral, c.start_lateral) * normal
        return np.array([*start, c.start_height])

    def _tcp_progress(self) -> tuple[float, float]:
        """path_progress of the TCP, computed once per TCP position: a step reads it for the
        observation and again for the goal distance. Keyed by the position itself (the
        result is a function of it alone), so the cached value is always exact."""
        point = self.data.site_xpos[self.tcp_site, :2]
        cached = self._progress_cache
        if cached is None or not np.array_equal(cached[0], point):
            cached = self._progress_cache = (point.copy(), path_progress(point, self.path))
        return cached[1]

    def _goal_distance(self):
        """Remaining length along the slot plus the distance off its centre line."""
        s, off_path = self._tcp_progress()
        return self.total_length - s + off_path

    def _task_obs(self):
        s, _ = self._tcp_progress()
        to_goal = (self.goal - self.data.site_xpos[self.tcp_site]) / self.config.goal_obs_scale
        return np.array([*to_goal, s / self.total_length])

    def scripted_action(self):
        """Follow the centre line, aiming a little ahead of the closest point."""
        c = self.config
        s, _ = path_progress(self.tcp_pos[:2], self.path)
        target = np.array([*path_point(s + c.script_lookahead, self.path), c.start_height])
        action = np.zeros(self.action_space.shape, np.float32)
        action[:3] = np.clip((target - self.target_pos) / c.pos_action_scale, -1, 1)
        return action
