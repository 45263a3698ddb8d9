"""Run a recipe into a run directory, stage by stage, resuming where an earlier run stopped.

RUN/
  recipe.yaml       the recipe as first run (a later run must match it stage by stage)
  log.txt           every stage's output, time-stamped
  report.json       every stage's settings, commands, wall time and figures (rewritten after each stage)
  stages/NAME.json  a stage's record: it is done (skipped next time) once this is there
  NAME/             a stage's output
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from il_robot.provenance import git_commit, machine
from il_robot.recipes.command_log import RunLog
from il_robot.recipes.model_card import package
from il_robot.recipes.spec import Recipe, load_recipe
from il_robot.recipes.stages import KINDS, StageContext


def _stage_record(run: Path, name: str) -> Path:
    return run / "stages" / f"{name}.json"


def _done_stages(run: Path, recipe: Recipe) -> dict[str, dict]:
    """The records of the stages finished in RUN. A finished stage is only skipped if the recipe still asks
    for exactly what it did, and if no stage before it is to run again (its input would have changed)."""
    done = {}
    for stage in recipe.stages:
        path = _stage_record(run, stage.name)
        if path.is_file():
            record = json.loads(path.read_text())
            if record["settings"] != json.loads(json.dumps(stage.settings)) or record["kind"] != stage.kind:
                raise ValueError(f"{run}: stage {stage.name!r} was done with other settings than the recipe's now "
                                 f"({path}); use another --out, or delete {run / stage.name} and {path} to redo it")
            done[stage.name] = record
    names = [stage.name for stage in recipe.stages]
    todo = [name for name in names if name not in done]
    later = [name for name in names[names.index(todo[0]) + 1:] if name in done] if todo else []
    if later:
        raise ValueError(f"{run}: stage {todo[0]!r} is to run (again), but later stages are done from before it and "
                         f"would be skipped with stale inputs: {', '.join(later)}; delete their directories and "
                         f"records ({run / 'stages'}/NAME.json) too, or use another --out")
    return done


def run_recipe(recipe_path: str | Path, run_dir: str | Path, device: str = "cpu", echo: bool = True,
               until: str | None = None, nproc_per_node: int = 1) -> dict:
    """`nproc_per_node` > 1: the training stages run on that many processes under torchrun (TecNet only)."""
    recipe = load_recipe(recipe_path)
    run = Path(run_dir)
    until = recipe.compounds.get(until, [until])[-1]   # a dagger-rounds stage: its last fine-tune
    if until is not None and until not in {s.name for s in recipe.stages}:
        raise ValueError(f"--until {until!r}: no such stage in {recipe.path}")
    if nproc_per_node < 1 or (nproc_per_node > 1 and recipe.model != "tecnet"):
        raise ValueError(f"--nproc-per-node {nproc_per_node}: at least 1, and more only for tecnet recipes "
                         "(PlaNet trains in one process)")
    done = _done_stages(run, recipe)
    run.mkdir(parents=True, exist_ok=True)
    if not (run / "recipe.yaml").exists():
        shutil.copy(recipe.path, run / "recipe.yaml")
    log = RunLog(run / "log.txt", echo=echo)
    report_path = run / "report.json"
    report = {"recipe": str(recipe.path), "model": recipe.model, "device": device, "commit": git_commit(),
              "machine": machine(), "stages": dict(done)}
    _write_report(report_path, report)
    started = time.monotonic()
    log.say(f"recipe {recipe.path} ({recipe.model}, {len(recipe.stages)} stages) -> {run}")
    for i, stage in enumerate(recipe.stages, 1):
        head = f"[stage {i}/{len(recipe.stages)}] {stage.name} ({stage.kind})"
        if stage.name in done:
            log.say(f"{head}: done before, skipped")
            continue
        log.say(f"{head} — {time.monotonic() - started:.0f} s into this run")
        ctx = StageContext(run, recipe, log, device, commands=[], nproc_per_node=nproc_per_node)
        t0 = time.monotonic()
        figures = (package(ctx, stage, report) if stage.kind == "package" else KINDS[stage.kind](ctx, stage))
        record = {"kind": stage.kind, "settings": stage.settings, "commands": ctx.commands,
                  "seconds": time.monotonic() - t0, "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "figures": figures}
        path = _stage_record(run, stage.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2, default=str))
        report["stages"][stage.name] = record
        _write_report(report_path, report)
        log.say(f"{head}: done in {record['seconds'] / 60:.1f} min")
        if stage.name == until:
            log.say(f"stopped after {until} (--until); run again without it to go on")
            break
    _write_report(report_path, report)
    log.say(f"report: {report_path} (whole recipe: {report['wall_seconds'] / 60:.1f} min of stage time)")
    return report


def _write_report(path: Path, report: dict) -> None:
    report["wall_seconds"] = sum(s.get("seconds") or 0.0 for s in report["stages"].values())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    tmp.replace(path)
