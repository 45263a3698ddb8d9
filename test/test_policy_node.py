"""Policy selection through parameters, on a real rclpy node."""

from rclpy.parameter import Parameter

from il_robot.ros.policy_node import PolicyNode


def test_swap_is_refused_with_reason_and_old_policy_kept(ros):
    node = ros.add(PolicyNode(context=ros.context, parameter_overrides=[Parameter("use_sim_time", value=False)]))
    ros.executor.add_node(node.control_node)
    old = node.policy
    result = node.set_parameters([Parameter("policy", value="no_such_policy")])[0]
    assert not result.successful and "unknown policy 'no_such_policy'" in result.reason
    assert node.policy is old and node.policy_name == "scripted"
    assert node.get_parameter("policy").value == "scripted"


def test_swap_to_a_registered_policy(ros):
    node = ros.add(PolicyNode(context=ros.context, parameter_overrides=[Parameter("use_sim_time", value=False)]))
    ros.executor.add_node(node.control_node)
    result = node.set_parameters([Parameter("policy", value="hold")])[0]
    assert result.successful and node.policy_name == "hold" and node.swaps == 1
