import numpy as np
import pytest

from il_robot.robot.joint_order import JointInputError, JointOrder

NAMES = ["a", "b", "c"]


def test_reorders_by_name():
    order = JointOrder(NAMES)
    np.testing.assert_array_equal(order.reorder(["c", "a", "b"], [3, 1, 2], "x"), [1, 2, 3])


@pytest.mark.parametrize("names, values, match", [
    (["a", "b", "z"], [1, 2, 3], "unknown joint"),
    (["a", "b"], [1, 2], "missing joint"),
    (["a", "b", "c"], [1, np.nan, 3], "NaN"),
    (["a", "b", "c"], [1, np.inf, 3], "NaN or Inf"),
    (["a", "b", "c"], [1, 2], "2 values for 3"),
    (["a", "a", "b"], [1, 2, 3], "duplicate"),
])
def test_rejects_bad_input(names, values, match):
    with pytest.raises(JointInputError, match=match):
        JointOrder(NAMES).reorder(names, values, "x")
