"""il_robot: few-shot imitation for ROS 2 arms, with a MuJoCo pushing world.

The core (robot, sim, policies) is importable without rclpy; ``il_robot.ros``
holds the thin rclpy adapters and ``il_robot.cli`` the ``il-robot`` command.
"""

__version__ = "0.1.0"
