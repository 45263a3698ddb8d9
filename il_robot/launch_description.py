"""A launch/launch_ros description from a Graph: what every launch/*.launch.py returns.

Imports launch and launch_ros lazily: they come with a ROS 2 install, not
with pip, and nothing else in the package needs them.
"""

from __future__ import annotations

import os

from il_robot.exit_codes import EXIT_CANNOT_START
from il_robot.graph import BUILTIN_PARAMS, Graph, NodeSpec, builtin_or


def graph_launch_description(graph: Graph):
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument, RegisterEventHandler, SetEnvironmentVariable
    from launch.event_handlers import OnProcessExit
    from launch.conditions import IfCondition
    from launch.substitutions import LaunchConfiguration, PythonExpression
    from launch.substitution import Substitution
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue

    params_file = os.path.join(get_package_share_directory("il_robot"), "config", graph.params_file)
    actions = [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description)
               for a in graph.arguments]
    # DDS stays on this machine unless the user chose otherwise.
    actions.append(SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE",
                                          os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")))
    actions.append(SetEnvironmentVariable("MUJOCO_GL", os.environ.get("MUJOCO_GL", "egl")))

    class Computed(Substitution):
        """A value computed in Python from the launch arguments, with the same functions
        `il-robot launch` uses, so both launchers decide alike."""

        def __init__(self, what: str, compute):
            super().__init__()
            self.what, self.compute = what, compute

        def describe(self) -> str:
            return self.what

        def perform(self, context) -> str:
            return self.compute(context)

    def builtin_or_arg(name: str) -> Computed:
        """A launch argument, with any spelling of "built-in" (builtin, '', "") made empty."""
        return Computed(f"BuiltinOr({name})", lambda context: builtin_or(LaunchConfiguration(name).perform(context)))

    def starts(spec: NodeSpec) -> Computed:
        """'true' when the graph starts the node with these arguments (its condition, this host's role)."""
        def compute(context) -> str:
            values = {a.name: LaunchConfiguration(a.name).perform(context) for a in graph.arguments}
            return "true" if graph.starts(spec, values) else "false"
        return Computed(f"Starts({spec.name})", compute)

    string_params = {"robot_description", "model_dir", "out_dir"}   # may be empty: keep them strings
    for spec in graph.nodes:
        overrides = {param: (ParameterValue(builtin_or_arg(arg) if param in BUILTIN_PARAMS else LaunchConfiguration(arg),
                                            value_type=str)
                             if param in string_params else LaunchConfiguration(arg))
                     for param, arg in spec.params.items()}
        overrides.update({param: ParameterValue(PythonExpression(["'", LaunchConfiguration(arg), f"' == '{value}'"]),
                                                value_type=bool)
                          for param, (arg, value) in spec.flags.items()})
        node = Node(
            package="il_robot",
            executable=spec.executable,
            name=spec.name,
            output="screen",
            parameters=[params_file, overrides],
            condition=IfCondition(starts(spec)),
        )
        actions += [node, RegisterEventHandler(OnProcessExit(target_action=node, on_exit=_on_exit(spec)))]
    return LaunchDescription(actions)


def _on_exit(spec: NodeSpec):
    """What a node's exit does to the launch (graph.NodeSpec.required, EXIT_CANNOT_START)."""
    from launch.actions import EmitEvent, LogInfo
    from launch.events import Shutdown

    def on_exit(event, context):
        if context.is_shutdown:
            return None   # Ctrl-C or another node's stop: every node exits now
        code = event.returncode
        if code == EXIT_CANNOT_START or (spec.required and code != 0):
            # Raised, so `ros2 launch` logs it as an error, stops every node and exits 1.
            raise RuntimeError(f"{spec.name} {'cannot start' if code == EXIT_CANNOT_START else 'died'} "
                               f"(exit code {code}; its log is above): stopping the launch")
        if spec.required:
            return [LogInfo(msg=f"{spec.name} exited: stopping the launch"),
                    EmitEvent(event=Shutdown(reason=f"{spec.name} exited"))]
        if code != 0:
            return [LogInfo(msg=f"ERROR: {spec.name} died (exit code {code}); the rest of the graph runs on")]
        return None

    return on_exit
