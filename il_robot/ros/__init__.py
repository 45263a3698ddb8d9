"""Thin rclpy adapters around the ROS-free core; one file per node."""
