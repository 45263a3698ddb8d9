"""What each kind of recipe stage does: the `il-robot` commands it runs and the figures it keeps.

Every stage writes into RUN/<stage name>/ and returns its figures; the runner marks it done. A stage
started again after an interruption picks up what its commands left: `record` skips bags already
there, `train` resumes from its last checkpoint, a DAgger round replaces its own episodes.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from il_robot.parallel import usable_cores
from il_robot.recipes.command_log import RunLog
from il_robot.recipes.spec import Recipe, Stage


@dataclass
class StageContext:
    run: Path
    recipe: Recipe
    log: RunLog
    device: str
    commands: list[str]
    nproc_per_node: int = 1     # training stages run on this many processes (torchrun); 1 = as a plain command

    @property
    def recipe_names(self) -> set[str]:
        return {s.name for s in self.recipe.stages}

    def il_robot(self, argv: list, nproc_per_node: int = 1) -> None:
        self.commands.append(self.log.run([str(a) for a in argv], nproc_per_node=nproc_per_node))

    def out(self, name: str) -> Path:
        return self.run / name

    def record_file(self, name: str, suffix: str) -> Path:
        """A JSON a stage's command writes beside the stage records, outside its output directory."""
        path = self.run / "stages" / f"{name}.{suffix}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def model(self, name: str) -> dict:
        """The model a train or select stage produced: its exported directory and, where there is one,
        the checkpoint it was exported from (fine-tunes start from the checkpoint: exact weights)."""
        stage = self.recipe.stage(name)
        if stage.kind == "select":
            return json.loads((self.out(name) / "choice.json").read_text())["model"]
        summary = json.loads((self.out(name) / "summary.json").read_text())
        return {"model_dir": summary["onnx"]["dir"],
                "checkpoint": summary["onnx"].get("checkpoint") or summary.get("checkpoint"), "stage": name}


def _workers(n: int) -> int:
    return n or usable_cores()


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


def record(ctx: StageContext, stage: Stage) -> dict:
    s, out = stage.settings, ctx.out(stage.name)
    summary = ctx.record_file(stage.name, "record")
    ctx.il_robot(["record", "--operator", ",".join(f"sim:{o}" for o in s["operators"]), "--tasks", s["tasks"],
                  "--num-tasks", s["num_tasks"], "--first-task", s["first_task"],
                  "--demos-per-task", s["demos_per_task"], "--seed", s["seed"],
                  "--workers", _workers(s["workers"]), "--out", out, "--json", summary])
    r = _read(summary)
    return {"demos": r["recorded"] + r["skipped_existing"], "recorded_now": r["recorded"],
            "record_wall_s": r["wall_time"], "by_skill": {k: v["success_rate"] for k, v in r["by_skill"].items()}}


def dataset(ctx: StageContext, stage: Stage) -> dict:
    out = ctx.out(stage.name)
    summary = ctx.record_file(stage.name, "build")
    if not (out / "dataset.json").is_file():     # a dataset appears whole (built aside, moved into place)
        ctx.il_robot(["dataset", "build", *[ctx.out(d) for d in stage["demos"]], "--out", out, "--json", summary])
    meta = _read(out / "dataset.json")
    return {"episodes": len(meta["episodes"]), "summary": meta.get("summary")}


def _set_args(settings: dict) -> list[str]:
    args = []
    for key, value in (settings or {}).items():
        args += ["--set", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    return args


def train(ctx: StageContext, stage: Stage) -> dict:
    s, out, model = stage.settings, ctx.out(stage.name), ctx.recipe.model
    if model == "planet":
        return _train_planet(ctx, stage)
    argv = ["train", "tecnet", "--data", ctx.out(s["dataset"]), "--out", out, "--device", ctx.device]
    if (out / "checkpoints" / "last.pt").is_file():
        argv += ["--resume"] + (["--steps", s["steps"]] if s["steps"] else [])
    else:
        sets = dict(s["set"])
        if s["rounds"]:
            sets["data.correction_rounds"] = [ctx.recipe.dagger_round(r) for r in s["rounds"]]
        argv += (["--config", s["config"]] if s["config"] else []) + _set_args(sets)
        argv += ["--steps", s["steps"]] if s["steps"] else []
        if s["init_from"]:
            start = ctx.model(s["init_from"]) if s["init_from"] in ctx.recipe_names else None
            argv += ["--init-from", (start["checkpoint"] or start["model_dir"]) if start else s["init_from"]]
    ctx.il_robot(argv, ctx.nproc_per_node)
    summary = _read(out / "summary.json")
    val = summary.get("final_val") or {}
    return {"steps": summary["steps"], "train_seconds": summary["train_seconds"],
            "steps_per_s": summary["steps_per_s"], "threads": summary["threads"], "best": summary["best"],
            "val_success_rate": _number(val.get("val_success_rate")),
            "val_embedding_accuracy": _number(val.get("val_embedding_accuracy")),
            "val_control_rmse_mps": _number(val.get("val_control_rmse_mps"))}


def _train_planet(ctx: StageContext, stage: Stage) -> dict:
    s, out = stage.settings, ctx.out(stage.name)
    if (out / "summary.json").is_file() is False and out.exists():
        shutil.rmtree(out)      # an interrupted position-latent run starts again (it has no --resume)
    argv = ["train", "planet", "--world-model", s["world_model"], "--data", ctx.run / "episodes", "--out", out]
    argv += ["--device", ctx.device] if ctx.device != "cpu" else []     # the position latent trains on the CPU
    argv += (["--config", s["config"]] if s["config"] else []) + _set_args(s["set"])
    argv += ["--steps", s["steps"]] if s["steps"] else []
    argv += ["--collect-every", s["collect_every"]] if s["collect_every"] is not None else []
    if s["init_from"]:
        start = ctx.model(s["init_from"]) if s["init_from"] in ctx.recipe_names else None
        argv += ["--init-from", start["checkpoint"] if start else s["init_from"]]
    ctx.il_robot(argv)
    summary = _read(out / "summary.json")
    v = summary.get("val_planning") or {}
    return {"steps": summary.get("steps"), "train_seconds": summary.get("train_seconds"),
            "planner_episodes": summary.get("planner_episodes"),
            "val_successes": v.get("successes"), "val_episodes": v.get("episodes")}


def _number(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def dagger(ctx: StageContext, stage: Stage) -> dict:
    s = stage.settings
    summary = ctx.record_file(stage.name, "dagger")
    argv = ["dataset", "dagger", ctx.out(s["dataset"]), "--model-dir", ctx.model(s["model"])["model_dir"],
            "--round", ctx.recipe.dagger_round(stage.name), "--beta", s["beta"], "--labeller", s["labeller"],
            "--workers", _workers(s["workers"]), "--json", summary]
    argv += ["--observation-delay", s["observation_delay"]] if s["observation_delay"] else []
    argv += ["--num-tasks", s["num_tasks"]] if s["num_tasks"] else []
    ctx.il_robot(argv)
    r = _read(summary)
    return {"round": r["round"], "episodes": r["episodes"], "learner_success": r["learner_success"]}


def _episodes(ctx: StageContext, model_dir: str, demos: str, tasks: str, episodes: int, shots: int, skill: str,
              workers: int, json_path: Path) -> dict:
    """In-process episodes of a model (no ROS graph): the fast closed-loop measure selection uses."""
    if ctx.recipe.model == "tecnet":
        ctx.il_robot(["bench", "tecnet", "--tecnet-dir", model_dir, "--tecnet-demo-dir", ctx.out(demos),
                      "--tasks", tasks, "--episodes", episodes, "--shots", shots, "--demo-skill", skill,
                      "--ticks", 10, "--workers", _workers(workers), "--json", json_path])
        e = _read(json_path)["tecnet"]["episodes"]
    else:
        ctx.il_robot(["bench", "planet", "--model-dir", model_dir, "--tasks", tasks, "--episodes", episodes,
                      "--truth-episodes", 0, "--no-scripted", "--plans", 1, "--workers", _workers(workers),
                      "--json", json_path])
        e = _read(json_path)["planet"]["episodes"]["planet"]
    return {"episodes": e["episodes"], "successes": int(round(e["success_rate"] * e["episodes"])),
            "success_rate": e["success_rate"], "final_distance_median": e["final_distance_median"],
            "failures": [{"task": r["task"], "seed": r["seed"], "final_distance": r["final_distance"]}
                         for r in e["per_episode"] if not r["success"]]}


def select(ctx: StageContext, stage: Stage) -> dict:
    """Closed-loop success on the val tasks picks the model; held-out tasks are never looked at here."""
    s, out = stage.settings, ctx.out(stage.name)
    out.mkdir(parents=True, exist_ok=True)
    scores = {}
    for name in s["candidates"]:
        m = ctx.model(name)
        scores[name] = _episodes(ctx, m["model_dir"], s["demos"], s["tasks"], s["episodes"], s["shots"],
                                 s["demo_skill"], s["workers"], out / f"{name}.json")
        ctx.log.say(f"  {name}: {scores[name]['successes']}/{scores[name]['episodes']} val episodes pushed home, "
                    f"median {scores[name]['final_distance_median'] * 100:.1f} cm")
    # Most successes; then the smaller median distance; then the earlier candidate (less training).
    chosen = min(scores, key=lambda n: (-scores[n]["successes"], scores[n]["final_distance_median"],
                                        s["candidates"].index(n)))
    choice = {"chosen": chosen, "model": ctx.model(chosen),
              "scores": {n: {k: v for k, v in sc.items() if k != "failures"} for n, sc in scores.items()}}
    (out / "choice.json").write_text(json.dumps(choice, indent=2))
    ctx.log.say(f"  chosen: {chosen}")
    return choice


def evaluate(ctx: StageContext, stage: Stage) -> dict:
    s, out = stage.settings, ctx.out(stage.name)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = ctx.model(s["model"])["model_dir"]
    runs = {}
    for r in s["runs"]:
        path = out / f"{r['name']}.json"
        if r["via"] == "inprocess":
            runs[r["name"]] = {**_episodes(ctx, model_dir, s["demos"], s["tasks"], r["episodes"], r["shots"],
                                           r["demo_skill"], r["workers"], path), "via": "inprocess"}
        else:
            ctx.il_robot(["eval", "--policy", ctx.recipe.model, "--model-dir", model_dir,
                          "--demo-dir", ctx.out(s["demos"]), "--tasks", s["tasks"], "--episodes", r["episodes"],
                          "--shots", r["shots"], "--demo-skill", r["demo_skill"], "--json", path])
            e = _read(path)
            runs[r["name"]] = {"episodes": e["episodes"], "successes": e["successes"],
                               "success_rate": e["success_rate"],
                               "final_distance_median": e["final_distance_median"], "via": "graph",
                               "failures": [{"task": p["task"], "seed": p["seed"],
                                             "final_distance": p["final_distance"]}
                                            for p in e["per_episode"] if not p["success"]]}
        runs[r["name"]]["command"] = ctx.commands[-1]
        x = runs[r["name"]]
        ctx.log.say(f"  {r['name']}: {x['successes']}/{x['episodes']} pushed home ({x['via']}), "
                    f"median {x['final_distance_median'] * 100:.1f} cm")
    return {"model": ctx.model(s["model"]), "runs": runs}


KINDS = {"record": record, "dataset": dataset, "train": train, "dagger": dagger, "select": select,
         "eval": evaluate}
