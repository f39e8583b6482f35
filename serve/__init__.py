"""Serving a trained policy on a robot: a core that knows nothing of ROS (observation cache, inference
thread, action scheduler, safety layer, metrics), a validated YAML robot mapping, and thin adapters —
ROS 1 (`ros1`), ROS 2 (`ros2`, needs rclpy) and offline bag replay (`replay`)."""
