"""ament_python package: installs with colcon (lib/il_robot, share/il_robot) and with pip."""

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "il_robot"


def share_tree(root: str) -> list[tuple[str, list[str]]]:
    """Every file under root, installed at the same relative place under share/il_robot."""
    files: dict[str, list[str]] = {}
    for path in sorted(glob(f"{root}/**/*", recursive=True)):
        if os.path.isfile(path):
            files.setdefault(f"share/{PACKAGE}/{os.path.dirname(path)}", []).append(path)
    return sorted(files.items())

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        *share_tree("config"),   # parameter files, training configs, config/recipes/
        *share_tree("models"),   # shipped ONNX models, their metadata and demo bags
    ],
    python_requires=">=3.10",
    install_requires=[
        # ROS 2 itself comes from the distro (colcon) or the ros-* wheels (pip, see README).
        "numpy",
        "mujoco>=3.2",
        "opencv-python-headless",
        "pyyaml",
        "tqdm",
    ],
    extras_require={
        "ros": ["ros-rclpy", "ros-rmw-fastrtps-cpp", "ros-sensor-msgs", "ros-std-msgs", "ros-geometry-msgs",
                "ros-trajectory-msgs", "ros-std-srvs", "ros-rosgraph-msgs"],
        # Exactly one of the two: both install the module onnxruntime, the second over the first, and
        # removing either then breaks the other. The GPU build holds the CPU provider too.
        "runtime": ["onnxruntime"],
        "runtime-gpu": ["onnxruntime-gpu"],
        "bags": ["rosbags", "mcap", "mcap-ros2-support"],
        "lerobot": ["av", "pyarrow", "pandas"],   # `dataset export --format lerobot`: mp4 video, parquet
        "train": ["torch==2.13.0", "onnx", "matplotlib"],
        "test": ["pytest", "pytest-timeout"],
    },
    zip_safe=True,
    maintainer="il_robot developers",
    maintainer_email="il-robot@example.com",
    description="Few-shot imitation (TecNet, PlaNet) for ROS 2 arms, with a MuJoCo pushing world",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "il-robot = il_robot.cli.main:main",
            "sim_node = il_robot.ros.sim_node:main",
            "inverse_dynamics_node = il_robot.ros.inverse_dynamics_node:main",
            "policy_node = il_robot.ros.policy_node:main",
            "teleop_node = il_robot.ros.teleop_node:main",
            "operator_node = il_robot.ros.operator_node:main",
            "recorder_node = il_robot.ros.recorder_node:main",
            "joy_teleop = il_robot.ros.joy_teleop_node:main",
            "keyboard_teleop = il_robot.ros.keyboard_teleop_node:main",
            "corrector_node = il_robot.ros.corrector_node:main",
        ],
    },
)
