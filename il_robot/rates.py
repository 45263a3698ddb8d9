"""The control rate the whole system runs at (ROS-free constant): one camera frame, one policy action,
one teleop command and one dataset row per tick. The simulator, the policy node, the operators, the
in-process stack and training read it here; a ROS node's rate parameter defaults to it."""

CONTROL_RATE_HZ = 20.0
