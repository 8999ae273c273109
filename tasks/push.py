"""push: push a 5 cm block across the table until it lies on a goal disc."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robo_rl.reward import DistanceReward
from robo_rl.tasks.base import ArmTask, ArmTaskConfig

# Goal rejection-sampling tries before giving up: with the default boxes and distances about
# 90% of draws are accepted, so 1000 failures mean the config leaves (almost) no valid goal.
MAX_GOAL_SAMPLES = 1000


@dataclass
class PushConfig(ArmTaskConfig):
    success_threshold: float = 0.02                  # block centre within 2 cm of the goal (xy)
    reach_shaping: float = 0.5                       # dense only: weight of -|TCP - block|
    block_low: tuple[float, float] = (0.42, -0.1)
    block_high: tuple[float, float] = (0.55, 0.1)
    push_distance: tuple[float, float] = (0.08, 0.14)  # block -> goal distance range, m
    goal_low: tuple[float, float] = (0.35, -0.2)     # goals are resampled until inside this box
    goal_high: tuple[float, float] = (0.65, 0.2)
    start_low: tuple[float, float, float] = (0.35, -0.15, 0.12)
    start_high: tuple[float, float, float] = (0.55, 0.15, 0.2)
    workspace_low: tuple[float, float, float] = (0.3, -0.25, 0.015)
    workspace_high: tuple[float, float, float] = (0.7, 0.25, 0.3)
    # scripted policy geometry (m): TCP height while pushing / travelling, standoff behind
    # the block centre before pushing, alignment tolerance
    script_push_height: float = 0.02
    script_travel_height: float = 0.08
    script_standoff: float = 0.065
    script_contact_offset: float = 0.04
    script_tolerance: float = 0.012


class Push(ArmTask):
    SCENE = "push"
    TOOL = "gripper"
    Config = PushConfig
    TASK_OBS_DIM = 6  # block - TCP, goal - block

    def _bind_ids(self):
        super()._bind_ids()
        joint = self.model.joint("block")
        self.block_qpos = self.model.jnt_qposadr[joint.id]
        self.block_body = self.model.body("block").id

    @property
    def block_pos(self):
        return self.data.xpos[self.block_body]

    def _sample_episode(self, rng):
        c = self.config
        block = rng.uniform(c.block_low, c.block_high)
        for _ in range(MAX_GOAL_SAMPLES):  # rejection sampling: a goal at the distance, in the box
            angle = rng.uniform(-np.pi, np.pi)
            goal = block + rng.uniform(*c.push_distance) * np.array([np.cos(angle), np.sin(angle)])
            if np.all(goal >= c.goal_low) and np.all(goal <= c.goal_high):
                break
        else:
            raise ValueError(f"no goal inside goal_low={c.goal_low}, goal_high={c.goal_high} at "
                             f"push_distance={c.push_distance} from the block at {block} in "
                             f"{MAX_GOAL_SAMPLES} tries; widen goal_low/goal_high, shorten "
                             "push_distance or move block_low/block_high inside the goal box")
        half = self.model.geom("block").size[2]
        self.data.qpos[self.block_qpos:self.block_qpos + 7] = [*block, half, 1, 0, 0, 0]
        self.goal = np.array([*goal, 0.0])
        self.data.mocap_pos[0] = self.goal
        return rng.uniform(c.start_low, c.start_high)

    def _extra_reward_terms(self):
        if self.config.reward_type != "dense":
            return []
        return [DistanceReward(dense=True, weight=self.config.reach_shaping, key="reach_distance",
                               threshold=self.config.success_threshold)]

    def _goal_distance(self):
        return float(np.linalg.norm(self.goal[:2] - self.block_pos[:2]))

    def _task_obs(self):
        return np.concatenate([self.block_pos - self.data.site_xpos[self.tcp_site],
                               self.goal - self.block_pos]) / self.config.goal_obs_scale

    def _step_info_extra(self):
        return {"reach_distance": float(np.linalg.norm(self.block_pos - self.tcp_pos))}

    def scripted_action(self):
        """Go behind the block (as seen from the goal), descend, push towards the goal."""
        c = self.config
        block, goal, tcp = self.block_pos[:2], self.goal[:2], self.tcp_pos
        u = (goal - block) / max(np.linalg.norm(goal - block), 1e-6)
        rel = tcp[:2] - block
        along = rel @ u
        lateral = np.linalg.norm(rel - along * u)
        pre_push = block - c.script_standoff * u
        if lateral < c.script_tolerance and along < 0 and tcp[2] < c.script_push_height + c.script_tolerance:
            target = np.array([*(goal - c.script_contact_offset * u), c.script_push_height])
        elif np.linalg.norm(tcp[:2] - pre_push) < c.script_tolerance:
            target = np.array([*pre_push, c.script_push_height])
        elif tcp[2] > c.script_travel_height - c.script_tolerance:
            target = np.array([*pre_push, c.script_travel_height])
        else:
            target = np.array([*tcp[:2], c.script_travel_height])
        action = np.zeros(self.action_space.shape, np.float32)
        action[:3] = np.clip((target - self.target_pos) / c.pos_action_scale, -1, 1)
        return action
