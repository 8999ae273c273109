"""arm/peg_insert over ROS 2: the env client publishes each episode's hole pose on the scene
topic and the twin moves its fixture there; resets lift the peg out of the last hole first.
Ground truth is the twin's physics seen through the measured joints (forward kinematics in the
client's arm model): a peg lowered 15 mm beside the hole must come to rest on the fixture's top
(so the fixture stands where the client says, in every episode), and the scripted insertion
must then reach the hole's bottom."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")

from robo_rl.envs import make_env  # noqa: E402
from robo_rl.envs.config import EnvConfig  # noqa: E402
from robo_rl.hardware.config import RobotEnvConfig  # noqa: E402

DOMAIN = 94
SHARED_CPU_TIMEOUT = 0.1      # s: the controller's joint-state watchdog when nodes and tests share 2 cores
BESIDE_HOLE = 0.015           # m: beside the 21 mm hole, still over the fixture's top
SETTLE_STEPS = 15             # policy steps to lower the peg onto the fixture and let it settle
TOP_TOLERANCE = 0.004         # m: the tip at rest on the fixture top (the spring presses it down)
LIFT_STEPS = 5                # policy steps to lift the peg off the fixture's top


def _towards(task, target) -> np.ndarray:
    action = np.zeros(task.action_space.shape, np.float32)
    action[:3] = np.clip((np.asarray(target) - task.target_pos) / task.config.pos_action_scale, -1, 1)
    return action


def test_peg_insert_through_the_twin_moves_the_fixture_each_episode(tmp_path):
    env = make_env(EnvConfig(name="arm/peg_insert"), seed=0,
                   hardware=RobotEnvConfig(kind="twin", domain_id=DOMAIN, twin_joint_state_timeout=SHARED_CPU_TIMEOUT))
    try:
        task = env.backend.task_env
        holes = []
        for seed in (3, 4):
            env.reset(seed=seed)
            hole = task.goal.copy()
            holes.append(hole)
            # 1. beside the hole and down: the fixture's top stops the peg
            beside = hole + np.array([BESIDE_HOLE, 0.0, -task.config.script_press_depth])
            for _ in range(SETTLE_STEPS):
                _, _, terminated, truncated, info = env.step(_towards(task, beside))
                assert not (terminated or truncated), info
            tip = task.tcp_pos
            assert abs(tip[2] - task.config.hole_depth) < TOP_TOLERANCE, (seed, tip, hole)
            # 2. up off the top again (the script reads a tip below the top as "in the hole"), then the
            # scripted insertion reaches the hole's bottom
            above = beside + np.array([0.0, 0.0, task.config.hole_depth + 2 * task.config.script_approach_clearance])
            for _ in range(LIFT_STEPS):
                env.step(_towards(task, above))
            for _ in range(task.config.episode_steps):
                _, _, terminated, truncated, info = env.step(task.scripted_action())
                if terminated or truncated:
                    break
            assert info["success"], (seed, info, task.tcp_pos, hole)
            assert task.tcp_pos[2] < task.config.hole_depth - 0.02, task.tcp_pos   # inside, not on top
        assert np.linalg.norm(holes[0][:2] - holes[1][:2]) > BESIDE_HOLE   # the fixture really moved
    finally:
        env.close()
