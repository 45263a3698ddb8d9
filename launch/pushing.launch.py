"""ros2 launch il_robot pushing.launch.py policy:=scripted

Starts the simulator (unless sim:=false, for a real arm), the inverse-dynamics
node and the policy node with config/pushing.yaml. The node list and the
launch arguments come from il_robot.graph, which `il-robot launch pushing`
reads too.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from il_robot.graph import PUSHING


def generate_launch_description():
    share = get_package_share_directory("il_robot")
    params_file = os.path.join(share, "config", PUSHING.params_file)
    actions = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
               for a in PUSHING.arguments]
    # DDS stays on this machine unless the user chose otherwise.
    actions.append(SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE",
                                          os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")))
    actions.append(SetEnvironmentVariable("MUJOCO_GL", os.environ.get("MUJOCO_GL", "egl")))
    for spec in PUSHING.nodes:
        overrides = {param: LaunchConfiguration(arg) for param, arg in spec.params.items()}
        actions.append(Node(
            package="il_robot",
            executable=spec.executable,
            name=spec.name,
            output="screen",
            parameters=[params_file, overrides],
            condition=IfCondition(LaunchConfiguration(spec.condition)) if spec.condition else None,
        ))
    return LaunchDescription(actions)
