"""Make a pip/venv install an ament prefix, so the real ROS 2 CLI finds il_robot.

`ros2 launch il_robot ...` and `ros2 run il_robot ...` look the package up on
AMENT_PREFIX_PATH: a marker in share/ament_index, share/il_robot (package.xml,
launch/, config/, models/) and the executables in lib/il_robot/. colcon lays
that out for a workspace; for a venv this does, in the venv itself (where the
ros-* wheels already keep their own index): the shared files link to the
source checkout (edits show at once, like `pip install -e`), the executables
link to the console scripts pip wrote.

    python -m il_robot.ament_prefix        # lay out (idempotent), print the prefix
    source scripts/ros2_env.sh             # then: ros2 launch il_robot pushing.launch.py
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

PACKAGE = "il_robot"
SHARED = ("package.xml", "config", "models")   # as setup.py's data_files installs them
LAUNCH = "launch"   # ros2 launch walks share/il_robot without following links: its files are linked one by one


def source_tree() -> Path:
    return Path(__file__).resolve().parent.parent


def console_scripts() -> list[str]:
    """The executables pip installed for il_robot (setup.py's console_scripts)."""
    try:
        eps = distribution(PACKAGE).entry_points
    except PackageNotFoundError:
        return []
    return sorted(ep.name for ep in eps if ep.group == "console_scripts")


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        if link.is_symlink() and Path(os.readlink(link)) == target:
            return
        if link.is_dir() and not link.is_symlink():
            return   # a real install (pip install ., colcon) already put it there
        link.unlink()
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)


def install(prefix: str | Path = sys.prefix) -> Path:
    """Lay out `prefix` as an ament prefix holding il_robot; returns the prefix."""
    prefix = Path(prefix).resolve()
    src = source_tree()
    marker = prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE
    marker.parent.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        marker.write_text("")
    share = prefix / "share" / PACKAGE
    for name in SHARED:
        if (src / name).exists():
            _link(src / name, share / name)
    if (share / LAUNCH).is_symlink():
        (share / LAUNCH).unlink()
    for launch_file in sorted((src / LAUNCH).glob("*.launch.py")):
        _link(launch_file, share / LAUNCH / launch_file.name)
    bin_dir = Path(sys.executable).parent if prefix == Path(sys.prefix).resolve() else prefix / "bin"
    for script in console_scripts():
        if (bin_dir / script).exists():
            _link(bin_dir / script, prefix / "lib" / PACKAGE / script)
    return prefix


def ros_env(env: dict | None = None, prefix: str | Path = sys.prefix) -> dict:
    """`env` (default os.environ) with the prefix first on AMENT_PREFIX_PATH and its bin/ on PATH,
    as `source install/setup.bash` would set them; DDS on loopback unless chosen otherwise."""
    env = dict(os.environ if env is None else env)
    prefix = str(Path(prefix).resolve())
    for var, value in (("AMENT_PREFIX_PATH", prefix), ("PATH", str(Path(sys.executable).parent))):
        parts = [p for p in env.get(var, "").split(os.pathsep) if p and p != value]
        env[var] = os.pathsep.join([value, *parts])
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return env


def main() -> int:
    print(install())
    return 0


if __name__ == "__main__":
    sys.exit(main())
