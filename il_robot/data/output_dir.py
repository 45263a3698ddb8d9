"""Writing a directory of results safely: into OUT.partial, then renamed into place.

Shared by `dataset build` and `dataset export`: an interrupted run leaves OUT as it was, and an
existing OUT is replaced only with --force and only when it is what this command writes.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path


def partial_dir(out: Path, force: bool, marker: str, what: str, run: str, error: type[Exception],
                check=lambda: None) -> Path:
    """OUT.partial, cleared, after checking OUT: present only with `force`, and then it must hold
    `marker` (the file that makes it `what`) or be empty. `run` names the command in the message
    about a leftover OUT.partial; `error` carries the refusal. `check` (the command's own refusals)
    runs after OUT is checked and before a leftover OUT.partial is touched."""
    partial = out.with_name(out.name + ".partial")
    if out.exists() and not force:
        raise error(f"{out} exists already; use --force to replace it")
    if out.exists() and not (out / marker).is_file() and any(out.iterdir()):
        raise error(f"{out} exists and is not {what} (no {marker}); not replacing it")
    check()
    if partial.exists():
        if not force:
            raise error(f"{partial} exists (an interrupted {run}?); remove it or use --force")
        shutil.rmtree(partial)
    return partial


def move_into_place(partial: Path, out: Path) -> None:
    """Rename the finished result to `out`; an old one is removed only after that succeeded."""
    old = None
    if out.exists():
        old = out.with_name(f"{out.name}.old-{datetime.now().strftime('%Y%m%d%H%M%S%f')}")
        out.rename(old)
    try:
        partial.rename(out)
    except BaseException:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
