"""What both trainers (TecNet, PlaNet) share: YAML configs into dataclasses, CSV logs, torch setup."""

from __future__ import annotations

import csv
import os
from dataclasses import fields, is_dataclass
from pathlib import Path

import torch
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


class CsvLog:
    """Append-only CSV; on resume, rows after the checkpoint's step are dropped (they will be redone)."""

    def __init__(self, path: Path, columns: tuple[str, ...], keep_until: int | None):
        self.path, self.columns = path, columns
        self.rows: list[dict] = []
        if keep_until is not None and path.is_file():
            with open(path, newline="") as f:
                self.rows = [r for r in csv.DictReader(f) if int(float(r["step"])) <= keep_until]
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, columns)
            writer.writeheader()
            writer.writerows(self.rows)

    def add(self, row: dict) -> None:
        row = {c: row.get(c, "") for c in self.columns}
        self.rows.append(row)
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow(row)


def set_threads(requested: int) -> int:
    n = requested or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


def torch_device(name: str) -> torch.device:
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device")
    return device
