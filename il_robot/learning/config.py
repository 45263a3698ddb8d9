"""Training settings for every model: a YAML file plus `section.key=value` overrides into nested dataclasses."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path

import yaml


def fill_config(cls, values: dict, where: str):
    """Dataclass `cls` from a dict, refusing unknown keys (a typo must not be silently ignored)."""
    values = values or {}
    if not isinstance(values, dict):
        raise ValueError(f"{where or 'config'}: expected a mapping, got {values!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where or 'config'}: unknown key(s) {unknown}; known: {sorted(known)}")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name)
        kwargs[name] = fill_config(type(default), value, f"{where}.{name}".strip(".")) if is_dataclass(default) else value
    return cls(**kwargs)


def read_config_values(path: str | Path | None, overrides: list[str] = ()) -> dict:
    """A YAML file's sections plus `section.key=value` overrides (values parsed as YAML)."""
    values = {}
    if path is not None:
        try:
            values = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as err:
            raise FileNotFoundError(f"cannot read config {path}: {err}") from None
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            raise ValueError(f"override {item!r} is not section.key=value")
        section, name = key.split(".", 1)
        values.setdefault(section, {})[name] = yaml.safe_load(raw)
    return values


def load_settings(cls, path: str | Path | None = None, overrides: list[str] = ()):
    """Dataclass `cls` from a YAML file (its sections) plus overrides; unknown keys are errors."""
    return fill_config(cls, read_config_values(path, overrides), "")
