"""The policies by name: every built-in one registered, made from a name and a PolicyConfig.

Apart from base.py so that the interface does not import its implementations (they import it).
"""

from __future__ import annotations

import importlib

from il_robot.policies.base import REGISTRY, Policy, PolicyConfig, PolicyLoadError


def available() -> list[str]:
    _load_builtin()
    return sorted(REGISTRY)


def make_policy(name: str, config: PolicyConfig) -> Policy:
    _load_builtin()
    if name not in REGISTRY:
        raise PolicyLoadError(f"unknown policy '{name}'; available: {', '.join(sorted(REGISTRY))}")
    try:
        return REGISTRY[name](config)
    except PolicyLoadError:
        raise
    except Exception as err:  # a broken model file surfaces as many exception types
        raise PolicyLoadError(f"{name}: {type(err).__name__}: {err}") from err


def _load_builtin() -> None:
    from il_robot.policies import hold, scripted  # noqa: F401  (each registers on import)
    from il_robot.teleop import operators, teleop_policy  # noqa: F401
    for name in ("tecnet", "planet"):       # need onnxruntime; the other policies must not depend on it
        _load_optional(name)


def _load_optional(name: str) -> None:
    """Import a policy module; if it cannot load, register a stand-in that says why when asked for."""
    try:
        importlib.import_module(f"il_robot.policies.{name}")
    except ImportError as err:
        reason = f"{name} is unavailable: {err} (bash scripts/setup.sh installs onnxruntime)"

        def unavailable(config: PolicyConfig, reason: str = reason) -> Policy:
            raise PolicyLoadError(reason)
        REGISTRY.setdefault(name, unavailable)
