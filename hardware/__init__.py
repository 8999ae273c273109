"""ROS 2 nodes (rclpy). Arrives with the hardware issue; robo_rl core never imports this eagerly."""
