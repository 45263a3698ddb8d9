"""The --json option every command shares: its figures written as a JSON file."""

from __future__ import annotations

import json


def write_json(path: str | None, data: dict) -> None:
    """Write `data` to `path` (nothing when no path was given) and say so."""
    if path:
        with open(path, "w") as f:
            json.dump(data, f, indent=2)
        print(f"wrote {path}")
