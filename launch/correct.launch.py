"""ros2 launch il_robot correct.launch.py policy:=tecnet demo:=/path/to/demo_bag [joy:=false] [sim_operator:=true]

Human-gated DAgger: the learned policy drives, a person watches and holds the
joystick's takeover button (or toggles t in `ros2 run il_robot keyboard_teleop`
with joy:=false) to correct it; the recorder writes one bag per episode, the
operator's frames marked as corrections of `round`. `il-robot dataset add`
turns them into correction episodes. Same graph as `il-robot launch correct`
(il_robot.graph.CORRECT); `il-robot dataset dagger --labeller human` runs it
task by task.
"""

from il_robot.graph import CORRECT
from il_robot.launch_description import graph_launch_description


def generate_launch_description():
    return graph_launch_description(CORRECT)
