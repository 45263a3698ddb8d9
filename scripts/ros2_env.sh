# Source me: `source scripts/ros2_env.sh`, then the real ROS 2 CLI finds il_robot in .venv
# (ros2 launch il_robot pushing.launch.py, ros2 run il_robot policy_node, ros2 param, ros2 topic).
# scripts/setup.sh lays .venv out as an ament prefix (python -m il_robot.ament_prefix).
_il_robot_venv="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)/.venv"
export AMENT_PREFIX_PATH="$_il_robot_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export PATH="$_il_robot_venv/bin:$PATH"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
unset _il_robot_venv
