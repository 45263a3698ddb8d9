"""Declaring parameters the ros2_control way: description, range, and checked changes."""

from __future__ import annotations

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node


def declare(node: Node, name: str, default, description: str, *, float_range=None, int_range=None,
            choices=None, read_only: bool = False):
    """Declare `name` with a descriptor; returns its (possibly overridden) value."""
    desc = ParameterDescriptor(description=description, read_only=read_only)
    if choices:
        desc.additional_constraints = "one of: " + ", ".join(choices)
    if float_range is not None:
        desc.floating_point_range = [FloatingPointRange(from_value=float(float_range[0]),
                                                        to_value=float(float_range[1]), step=0.0)]
    if int_range is not None:
        desc.integer_range = [IntegerRange(from_value=int(int_range[0]), to_value=int(int_range[1]), step=1)]
    value = node.declare_parameter(name, default, desc).value
    if choices and value not in choices:
        raise ValueError(f"parameter {name}='{value}' is not one of {list(choices)}")
    return value


def check_choices(params, allowed: dict[str, tuple]) -> SetParametersResult:
    """Refuse a change whose value is not one of the allowed choices."""
    for p in params:
        if p.name in allowed and p.value not in allowed[p.name]:
            return SetParametersResult(successful=False,
                                       reason=f"{p.name} must be one of {list(allowed[p.name])}, got '{p.value}'")
    return SetParametersResult(successful=True)
