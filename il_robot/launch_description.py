"""A launch/launch_ros description from a Graph: what every launch/*.launch.py returns.

Imports launch and launch_ros lazily: they come with a ROS 2 install, not
with pip, and nothing else in the package needs them.
"""

from __future__ import annotations

import os

from il_robot.graph import Graph


def graph_launch_description(graph: Graph):
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue

    params_file = os.path.join(get_package_share_directory("il_robot"), "config", graph.params_file)
    actions = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
               for a in graph.arguments]
    # DDS stays on this machine unless the user chose otherwise.
    actions.append(SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE",
                                          os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")))
    actions.append(SetEnvironmentVariable("MUJOCO_GL", os.environ.get("MUJOCO_GL", "egl")))
    string_params = {"robot_description", "model_dir", "out_dir"}   # may be empty: keep them strings
    for spec in graph.nodes:
        overrides = {param: (ParameterValue(LaunchConfiguration(arg), value_type=str)
                             if param in string_params else LaunchConfiguration(arg))
                     for param, arg in spec.params.items()}
        actions.append(Node(
            package="il_robot",
            executable=spec.executable,
            name=spec.name,
            output="screen",
            parameters=[params_file, overrides],
            condition=IfCondition(LaunchConfiguration(spec.condition)) if spec.condition else None,
        ))
    return LaunchDescription(actions)
