"""reach: move the gripper's TCP to a random goal point in free space."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robo_rl.tasks.base import ArmTask, ArmTaskConfig


@dataclass
class ReachConfig(ArmTaskConfig):
    success_threshold: float = 0.01                        # SERL: within 1 cm
    goal_low: tuple[float, float, float] = (0.35, -0.2, 0.08)
    goal_high: tuple[float, float, float] = (0.65, 0.2, 0.3)
    start_low: tuple[float, float, float] = (0.35, -0.15, 0.15)
    start_high: tuple[float, float, float] = (0.55, 0.15, 0.3)


class Reach(ArmTask):
    SCENE = "reach"
    TOOL = "gripper"
    Config = ReachConfig
    TASK_OBS_DIM = 3  # goal - TCP

    def _sample_episode(self, rng):
        c = self.config
        self.goal = rng.uniform(c.goal_low, c.goal_high)
        self.data.mocap_pos[0] = self.goal
        return rng.uniform(c.start_low, c.start_high)

    def scripted_action(self):
        """Move the set-point straight at the goal."""
        action = np.zeros(self.action_space.shape, np.float32)
        action[:3] = np.clip((self.goal - self.target_pos) / self.config.pos_action_scale, -1, 1)
        return action
