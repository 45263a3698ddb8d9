"""Keep DDS on this machine unless the user has decided otherwise."""

import os


def ensure_localhost_discovery(env: dict | None = None) -> dict:
    """Default ROS_AUTOMATIC_DISCOVERY_RANGE to LOCALHOST (in `env`, or os.environ)."""
    target = os.environ if env is None else env
    target.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return target
