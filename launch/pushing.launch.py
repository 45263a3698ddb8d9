"""ros2 launch il_robot pushing.launch.py policy:=scripted

Starts the simulator (unless sim:=false, for a real arm), the inverse-dynamics
node and the policy node with config/pushing.yaml. The node list and the
launch arguments come from il_robot.graph, which `il-robot launch pushing`
reads too.
"""

from il_robot.graph import PUSHING
from il_robot.launch_description import graph_launch_description


def generate_launch_description():
    return graph_launch_description(PUSHING)
