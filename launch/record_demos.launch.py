"""ros2 launch il_robot record_demos.launch.py out_dir:=demos [sim_operator:=true skill:=okay | joy:=true]

Records demonstrations: the simulator, the inverse-dynamics node, the teleop
node (operator velocity -> desired joint motion), an operator (simulated, a
joystick, or `ros2 run il_robot keyboard_teleop` in another terminal) and the
recorder, which writes one bag per episode. Same graph as
`il-robot launch record_demos` (il_robot.graph.RECORD_DEMOS).
"""

from il_robot.graph import RECORD_DEMOS
from il_robot.launch_description import graph_launch_description


def generate_launch_description():
    return graph_launch_description(RECORD_DEMOS)
