"""Policy serving: a robo_rl checkpoint driving an arm over ROS 2 at its policy rate.

    ros2 run robo_rl policy_node --ros-args -p checkpoint:=runs/x/checkpoints/latest.pt
    python -m robo_rl.hardware.policy_node --ros-args -p checkpoint:=... -p episodes:=5

The node is the env client (hardware/env_client.py: same observations, action mapping and
safety clip as the task the checkpoint was trained on) plus the checkpoint's agent acting in
eval mode; each action is also published as std_msgs/Float32MultiArray on topics.action so a
lab can log or inspect it. Episodes start as the env client's reset does (move to a sampled
start pose). The ROS_DOMAIN_ID of the process is the domain it drives.
"""

from __future__ import annotations

import faulthandler
import os
import sys
from pathlib import Path

from .config import RobotEnvConfig
from .ros import import_rclpy

NODE_NAME = "policy"
# parameter -> default: checkpoint (required), the task's policy rate (0 = as trained; any other
# value must equal it: a policy is not rate-independent), task (empty = the checkpoint's; else
# must match), episodes (0 = until stopped)
PARAMETERS = {"checkpoint": "", "rate_hz": 0.0, "task": "", "episodes": 0}


# The parameter reader is a throwaway participant: it joins no graph (discovery off), so it never
# matches the running nodes and is never torn down mid-handshake with them - such a teardown
# segfaulted this process once in CI (FastDDS 3.2).
READER_DISCOVERY = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "OFF"}


def read_parameters(argv) -> dict:
    """Parameters from `--ros-args -p name:=value` through a short-lived, undiscoverable node."""
    rclpy = import_rclpy()
    from rclpy.node import Node

    saved = {key: os.environ.get(key) for key in READER_DISCOVERY}
    os.environ.update(READER_DISCOVERY)  # rcl reads it at init
    try:
        rclpy.init(args=list(argv))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        node = Node(NODE_NAME, start_parameter_services=False, enable_rosout=False)
        for name, value in PARAMETERS.items():
            node.declare_parameter(name, value)
        values = {name: node.get_parameter(name).value for name in PARAMETERS}
        node.destroy_node()
    finally:
        rclpy.try_shutdown()
    return values


def serve(params: dict, hw: RobotEnvConfig | None = None) -> int:
    """Run the checkpoint's policy on the arm; -> episodes run."""
    if not params["checkpoint"]:  # before the heavy imports: a missing path fails at once
        raise ValueError("policy_node needs a checkpoint: --ros-args -p checkpoint:=PATH")
    import numpy as np
    from omegaconf import OmegaConf

    from robo_rl.checkpoint import load_checkpoint
    from robo_rl.loops.common import env_config, resolve_device
    from robo_rl.loops.evaluate import agent_from_checkpoint
    from std_msgs.msg import Float32MultiArray

    from .env_client import make_robot_env

    path = Path(params["checkpoint"])
    payload = load_checkpoint(path)
    run_cfg = OmegaConf.create(payload["config"])
    task = str(run_cfg.task.name)
    if params["task"] and params["task"] not in (task, task.removeprefix("arm/")):
        raise ValueError(f"task={params['task']} but {path} was trained on {task}")
    cfg = env_config(run_cfg.task, 0)
    control_hz = float(cfg.options.get("control_hz", 10.0))
    if params["rate_hz"] and abs(params["rate_hz"] - control_hz) > 1e-9:
        raise ValueError(f"rate_hz={params['rate_hz']} but {path} was trained at {control_hz} Hz "
                         "(task.options.control_hz); serve it at that rate")
    hw = hw or RobotEnvConfig(kind="real", domain_id=int(os.environ.get("ROS_DOMAIN_ID", "0")))
    env = make_robot_env(cfg, hw, seed=0)
    try:
        agent = agent_from_checkpoint(payload, path, env, resolve_device("auto"))
        publisher = env.backend.link.action_pub
        episode = 0
        while params["episodes"] <= 0 or episode < params["episodes"]:
            obs, _ = env.reset(seed=episode)
            done = False
            while not done:
                action = agent.act(obs, eval_mode=True)
                publisher.publish(Float32MultiArray(data=np.asarray(action, np.float32).tolist()))
                obs, _, terminated, truncated, info = env.step(action)
                done = terminated or truncated
            print(f"policy: episode {episode} success={info.get('success')} steps "
                  f"{env.backend.task.step_count}", file=sys.stderr, flush=True)
            episode += 1
    finally:
        env.close()
    return episode


def main(argv=None) -> int:
    argv = sys.argv if argv is None else argv
    ours = argv[1:argv.index("--ros-args")] if "--ros-args" in argv else argv[1:]
    if "-h" in ours or "--help" in ours:
        print(__doc__)
        return 0
    faulthandler.enable()  # a crash in the DDS layer prints where it happened
    try:
        serve(read_parameters(argv))
    except KeyboardInterrupt:
        return 0
    except (ValueError, RuntimeError, OSError) as error:
        print(f"robo-rl: error: {error}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
