"""Teleop node: an operator's tip velocity (/teleop/cmd_vel) -> desired joint motion, at control rate.

It is the policy node running the `teleop` policy: the same resolved-rate
control (damped least squares on the MuJoCo Jacobian, joint limits), the same
desired-motion output and the same action label on /tip_velocity_command, so a
recorded demo's actions are exactly what a learned policy will output.
Keyboard, joystick and simulated operators all publish /teleop/cmd_vel.
"""

import sys

from il_robot.policies.base import PolicyLoadError
from il_robot.robot.model import RobotModelError
from il_robot.ros.policy_node import PolicyNode
from il_robot.ros.runner import run_node


class TeleopNode(PolicyNode):
    def __init__(self, **kwargs):
        super().__init__(node_name="teleop", default_policy="teleop", **kwargs)


def main(args=None) -> int:
    return run_node(TeleopNode, args, errors=(RobotModelError, PolicyLoadError, ValueError))


if __name__ == "__main__":
    sys.exit(main())
