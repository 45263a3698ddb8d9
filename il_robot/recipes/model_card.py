"""The package stage: RUN/model, a model directory ready to ship, with its model card (MODEL.md).

The card is written from the run's report, so every figure in it is one the run measured, next to the
command that measured it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from il_robot.recipes.spec import Stage
from il_robot.recipes.stages import StageContext


def _minutes(seconds) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"


def _ship_demo(demo_dir: Path, skill: str) -> Path | None:
    """The first demo bag of the given skill (by name: task order), shipped so the model runs out of the box."""
    bags = sorted(p for p in demo_dir.iterdir() if p.is_dir() and p.name.endswith(f"_{skill}"))
    return bags[0] if bags else None


def package(ctx: StageContext, stage: Stage, report: dict) -> dict:
    s, out = stage.settings, ctx.out(stage.name)
    source = Path(ctx.model(s["model"])["model_dir"])
    if out.exists():
        shutil.rmtree(out)
    shutil.copytree(source, out)
    demo = _ship_demo(ctx.out(s["demos"]), s["ship_demo_skill"])
    if demo is not None:
        shutil.copytree(demo, out / "demos" / demo.name)
    shutil.copy(ctx.recipe.path, out / "recipe.yaml")
    evals = {name: report["stages"][name]["figures"] for name in s["evals"] if name in report["stages"]}
    (out / "MODEL.md").write_text(card(ctx, report, evals, demo))
    ctx.log.say(f"  model directory: {out} (MODEL.md; copy it over models/{ctx.recipe.model} to ship it)")
    return {"model_dir": str(out), "from": str(source), "demo": demo.name if demo else None}


def card(ctx: StageContext, report: dict, evals: dict, demo: Path | None) -> str:
    recipe, stages = ctx.recipe, report["stages"]
    commit = report["commit"]
    lines = [f"# {recipe.model} — model card", "",
             recipe.description or "", "",
             "## Where it came from", "",
             f"- Recipe: `config/recipes/{recipe.path.name}` (copied here as `recipe.yaml`), run with "
             f"`il-robot train {recipe.model} --recipe {recipe.path.stem} --out RUN`.",
             f"- Source commit: `{commit['commit']}`" + (" (with uncommitted changes)" if commit["dirty"] else ""),
             f"- Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
             f"{report['machine']['memory_gib']} GiB; training device `{report['device']}`.",
             f"- Wall time of the whole run: {_minutes(report['wall_seconds'])} (stages below).",
             f"- Shipped demo (used when the `demo` parameter is empty): `demos/{demo.name}`" if demo else "", "",
             "## Stages", "", "| stage | kind | wall time | what it gave |", "|---|---|---|---|"]
    for name in [st.name for st in recipe.stages if st.name in stages]:
        st = stages[name]
        lines.append(f"| {name} | {st['kind']} | {_minutes(st.get('seconds'))} | {_gist(st)} |")
    lines += ["", "## Held-out figures", "",
              "Measured on tasks the recipe never trained or selected on (`--tasks heldout`); RUN is the run "
              "directory.", "",
              "| run | episodes | pushed home | median final distance | command |", "|---|---|---|---|---|"]
    failures = []
    for figures in evals.values():
        for name, r in figures["runs"].items():
            lines.append(f"| {name} ({r['via']}) | {r['episodes']} | {r['success_rate']:.0%} | "
                         f"{r['final_distance_median'] * 100:.1f} cm | `{r['command'].replace(str(ctx.run), 'RUN')}` |")
            failures += [(name, f) for f in r["failures"]]
    lines += ["", "## Known failure cases", ""]
    if failures:
        lines += [f"- {name}: {f['task']} (seed {f['seed']}) ended {f['final_distance'] * 100:.1f} cm from the goal"
                  for name, f in failures]
    else:
        lines.append("- None in the held-out runs above.")
    lines += ["", "Success: the target ends within 5 cm of the goal's centre after 10 s of simulated time.", ""]
    return "\n".join(lines)


def _gist(stage: dict) -> str:
    f, kind = stage.get("figures") or {}, stage["kind"]
    if kind == "record":
        return f"{f.get('demos')} demos" + (f" ({f['recorded_now']} recorded in this stage)"
                                             if f.get("recorded_now") != f.get("demos") else "")
    if kind == "dataset":
        return f"{f.get('episodes')} episodes"
    if kind == "train":
        rate = f.get("steps_per_s")
        val = f.get("val_success_rate")
        steps = f.get("steps")
        steps = "+".join(f"{v}" for v in steps.values()) if isinstance(steps, dict) else steps
        return (f"{steps} steps" + (f", {rate:.2f} steps/s" if rate else "")
                + (f", val success {val:.0%}" if val is not None else "")
                + (f", val {f['val_successes']}/{f['val_episodes']}" if f.get("val_episodes") else ""))
    if kind == "dagger":
        return f"round {f.get('round')}: {f.get('episodes')} episodes, the model alone {f.get('learner_success', 0):.0%}"
    if kind == "select":
        return f"chose {f.get('chosen')} (" + ", ".join(
            f"{n} {sc['successes']}/{sc['episodes']}" for n, sc in f.get("scores", {}).items()) + ")"
    if kind == "eval":
        return ", ".join(f"{n} {r['successes']}/{r['episodes']}" for n, r in f.get("runs", {}).items())
    return ""
