"""Where the package's shared files (config/, launch/, models/) live, however it was installed."""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "il_robot"


def share_dir() -> Path:
    """colcon install (ament index) -> pip install (<prefix>/share) -> source checkout."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            return Path(get_package_share_directory(PACKAGE))
        except (PackageNotFoundError, OSError):  # OSError: no AMENT_PREFIX_PATH (pip install)
            pass
    except ImportError:
        pass
    source = Path(__file__).resolve().parent.parent
    if (source / "config").is_dir():
        return source
    installed = Path(sys.prefix) / "share" / PACKAGE
    if (installed / "config").is_dir():
        return installed
    raise FileNotFoundError(f"cannot find the {PACKAGE} share directory (config/, launch/, models/)")


def config_file(name: str) -> Path:
    return share_dir() / "config" / name


def models_dir() -> Path:
    return share_dir() / "models"
