"""`robo-rl record`: demonstrations (scripted or teleoperated) in the replay's on-disk format.

    recorder.py    the command: config, episode loop, demos.json, resume
    teleop.py      action layout, pacing, terminal keys, the keyboard source
    spacemouse.py  3Dconnexion SpaceMouse over hidapi (HID report parsing)
    ros_teleop.py  geometry_msgs/Twist or sensor_msgs/Joy from a ROS 2 topic: settings and mapping
                   (the subscribing node: robo_rl.hardware.teleop, where rclpy is imported)
"""
from robo_rl.record.recorder import (DEMOS_FILE, SOURCES, DemoInfo, RecordError, RecordRunConfig,
                                     compose_record_config, demo_seed, demo_settings_mismatch, read_demo_info, record,
                                     run_record, task_settings)
from robo_rl.record.teleop import TeleopError

__all__ = ["RecordRunConfig", "DemoInfo", "RecordError", "TeleopError", "record", "run_record", "read_demo_info",
           "compose_record_config", "demo_settings_mismatch", "task_settings", "demo_seed", "SOURCES", "DEMOS_FILE"]
