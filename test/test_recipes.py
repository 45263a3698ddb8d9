"""Recipes: strict reading, resuming, and the two tiny recipes end to end (real sims, training, ONNX, ROS graph)."""

import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from il_robot.cli.main import main
from il_robot.recipes.runner import run_recipe
from il_robot.recipes.spec import RecipeError, find_recipe, load_recipe, parse_recipe

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (training extras)")
RECIPES = ("tecnet", "tecnet-tiny", "tecnet-demos-only", "planet", "planet-tiny")


def recipe(stages: dict, model: str = "tecnet") -> dict:
    return {"model": model, "description": "test", "stages": stages}


RECORD = {"kind": "record", "tasks": "train", "num_tasks": 2}


@pytest.mark.parametrize("name", RECIPES)
def test_shipped_recipes_read_and_name_earlier_stages(name):
    r = load_recipe(find_recipe(name))
    assert r.model == name.split("-")[0] and r.stages
    kinds = [s.kind for s in r.stages]
    assert kinds[-1] == "package" and "select" in kinds and "eval" in kinds
    held = [s for s in r.stages if s.kind == "eval"]
    assert all(s["tasks"] == "heldout" for s in held)
    assert all(s["tasks"] == "val" for s in r.stages if s.kind == "select")   # selection never sees held-out


def test_a_typo_fails_before_any_work(tmp_path):
    with pytest.raises(RecipeError, match=r"unknown key\(s\) \['num_task'\]"):
        parse_recipe(recipe({"demos": {"kind": "record", "tasks": "train", "num_task": 2}}), tmp_path / "r.yaml")
    with pytest.raises(RecipeError, match="missing"):
        parse_recipe(recipe({"demos": {"kind": "record", "tasks": "train"}}), tmp_path / "r.yaml")
    with pytest.raises(RecipeError, match="needs kind"):
        parse_recipe(recipe({"demos": {"kind": "recrod", "tasks": "train", "num_tasks": 2}}), tmp_path / "r.yaml")
    with pytest.raises(RecipeError, match="model must be"):
        parse_recipe(recipe({"demos": RECORD}, model="act"), tmp_path / "r.yaml")


def test_references_must_name_an_earlier_stage_of_the_right_kind(tmp_path):
    later = {"data": {"kind": "dataset", "demos": ["demos"]}, "demos": RECORD}
    with pytest.raises(RecipeError, match="'demos' is not an earlier stage of kind record"):
        parse_recipe(recipe(later), tmp_path / "r.yaml")
    wrong_kind = {"demos": RECORD, "bc": {"kind": "train", "dataset": "demos", "steps": 1}}
    with pytest.raises(RecipeError, match="not an earlier stage of kind dataset"):
        parse_recipe(recipe(wrong_kind), tmp_path / "r.yaml")
    other_model = {"demos": RECORD, "data": {"kind": "dataset", "demos": "demos"},
                   "t": {"kind": "train", "world_model": "positions", "dataset": "data"}}
    with pytest.raises(RecipeError, match="for planet recipes"):
        parse_recipe(recipe(other_model), tmp_path / "r.yaml")


def test_dagger_rounds_are_numbered_by_their_order_in_the_recipe():
    r = load_recipe(find_recipe("tecnet"))
    daggers = [s.name for s in r.stages if s.kind == "dagger"]
    assert [r.dagger_round(n) for n in daggers] == list(range(1, len(daggers) + 1))


def test_dagger_rounds_are_written_out_as_rounds_and_fine_tunes(tmp_path):
    """One `dagger-rounds` stage stands for dagger-1, ft-1, dagger-2, ft-2, ...: each round driven by the
    model before, each fine-tune from that model on all rounds so far; a select stage may name it."""
    base = {"demos": RECORD, "data": {"kind": "dataset", "demos": "demos"},
            "bc": {"kind": "train", "dataset": "data", "steps": 5}}
    rounds = {"kind": "dagger-rounds", "count": 3, "dataset": "data", "model": "bc", "labeller": "phased",
              "finetune": {"steps": 7, "set": {"optim.lr": 0.0001}}}
    select = {"kind": "select", "candidates": ["bc", "rounds"], "demos": "demos"}
    r = parse_recipe(recipe({**base, "rounds": rounds, "select": select}), tmp_path / "r.yaml")
    assert [s.name for s in r.stages] == ["demos", "data", "bc", "dagger-1", "ft-1", "dagger-2", "ft-2",
                                          "dagger-3", "ft-3", "select"]
    assert [r.stage(f"dagger-{i}")["model"] for i in (1, 2, 3)] == ["bc", "ft-1", "ft-2"]
    assert all(r.stage(f"dagger-{i}")["labeller"] == "phased" for i in (1, 2, 3))
    ft3 = r.stage("ft-3")
    assert ft3["init_from"] == "ft-2" and ft3["rounds"] == ["dagger-1", "dagger-2", "dagger-3"]
    assert ft3["steps"] == 7 and ft3["set"] == {"optim.lr": 0.0001} and ft3["dataset"] == "data"
    assert r.stage("select")["candidates"] == ["bc", "ft-1", "ft-2", "ft-3"]
    assert r.compounds == {"rounds": ["dagger-1", "ft-1", "dagger-2", "ft-2", "dagger-3", "ft-3"]}
    latest = parse_recipe(recipe({**base, "rounds": {**rounds, "finetune": {"steps": 7, "latest_rounds": 2}}}),
                          tmp_path / "r.yaml")
    assert [latest.stage(f"ft-{i}")["rounds"] for i in (1, 2, 3)] == [
        ["dagger-1"], ["dagger-1", "dagger-2"], ["dagger-2", "dagger-3"]]
    assert "latest_rounds" not in latest.stage("ft-3").settings   # a fine-tune stage is a plain train stage
    polish = {"kind": "dagger-rounds", "count": 2, "dataset": "data", "model": "ft-3",
              "finetune": {"steps": 3, "latest_rounds": 3}}
    two = parse_recipe(recipe({**base, "rounds": rounds, "polish": polish,
                               "select": {**select, "candidates": ["polish"]}}), tmp_path / "r.yaml")
    assert two.compounds["polish"] == ["dagger-4", "ft-4", "dagger-5", "ft-5"]   # numbered on
    assert two.stage("dagger-4")["model"] == "ft-3" and two.dagger_round("dagger-5") == 5
    assert two.stage("ft-5")["rounds"] == ["dagger-3", "dagger-4", "dagger-5"]
    assert two.stage("select")["candidates"] == ["ft-4", "ft-5"]

    for bad, match in (({**rounds, "count": 0}, "count must be"),
                       ({**rounds, "finetune": {"latest_rounds": -1}}, "latest_rounds must be"),
                       ({**rounds, "finetune": {"stpes": 7}}, r"unknown key\(s\) \['stpes'\]"),
                       ({**rounds, "modle": "bc"}, r"unknown key\(s\) \['modle'\]")):
        with pytest.raises(RecipeError, match=match):
            parse_recipe(recipe({**base, "rounds": bad}), tmp_path / "r.yaml")
    clash = {**base, "ft-1": {"kind": "train", "dataset": "data", "steps": 1}, "rounds": rounds}
    with pytest.raises(RecipeError, match="already a stage 'ft-1'"):
        parse_recipe(recipe(clash), tmp_path / "r.yaml")


def test_a_done_stage_with_other_settings_is_refused(tmp_path):
    """Resuming with an edited recipe must not mix a stage done one way with later stages done another."""
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe({"demos": RECORD})))
    run = tmp_path / "run"
    (run / "stages").mkdir(parents=True)
    (run / "stages" / "demos.json").write_text(json.dumps(
        {"kind": "record", "settings": {**load_recipe(path).stages[0].settings, "num_tasks": 3}}))
    with pytest.raises(ValueError, match="stage 'demos' was done with other settings"):
        run_recipe(path, run, echo=False)


def test_a_stage_redone_before_done_ones_is_refused(tmp_path):
    """A stage whose record was deleted to redo it feeds the stages after it: they must not be skipped with what
    they made from its old output."""
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe({"demos": RECORD, "more": RECORD})))
    run = tmp_path / "run"
    (run / "stages").mkdir(parents=True)
    stages = load_recipe(path).stages
    (run / "stages" / "more.json").write_text(json.dumps({"kind": "record", "settings": stages[1].settings}))
    with pytest.raises(ValueError, match="stage 'demos' is to run .* later stages are done from before it .*: more"):
        run_recipe(path, run, echo=False)
    assert not (run / "log.txt").exists()                        # refused before any work


def test_recipe_excludes_the_single_run_options(tmp_path, capsys):
    code = main(["train", "tecnet", "--recipe", "tecnet-tiny", "--out", str(tmp_path / "r"), "--data", "x"])
    assert code == 2 and "--data: not with --recipe" in capsys.readouterr().err
    code = main(["train", "planet", "--recipe", "tecnet-tiny", "--out", str(tmp_path / "r")])
    assert code == 2 and "is a tecnet recipe, not planet" in capsys.readouterr().err
    code = main(["train", "tecnet", "--out", str(tmp_path / "r")])
    assert code == 2 and "--data DIR is required (or --recipe)" in capsys.readouterr().err


def _stage_lines(run: Path) -> list[str]:
    return [line.split(" ", 2)[2] for line in (run / "log.txt").read_text().splitlines() if "[stage " in line]


@pytest.mark.slow
@needs_torch
def test_tiny_tecnet_recipe_runs_end_to_end_and_resumes(tmp_path):
    """Every stage kind on a few tasks: demos, dataset, BC, a DAgger round, a fine-tune, selection on val,
    held-out eval through the ROS graph and in-process, the model directory with its card. Stopped after
    BC and run again, it resumes; run a third time, it does nothing."""
    run = tmp_path / "run"
    assert main(["train", "tecnet", "--recipe", "tecnet-tiny", "--out", str(run), "--until", "bc"]) == 0
    assert (run / "bc" / "onnx" / "metadata.json").is_file() and not (run / "stages" / "dagger-1.json").exists()
    assert main(["train", "tecnet", "--recipe", "tecnet-tiny", "--out", str(run)]) == 0
    lines = _stage_lines(run)
    assert sum("done before, skipped" in line for line in lines) == 5        # demos x3, dataset, bc

    report = json.loads((run / "report.json").read_text())
    stages = report["stages"]
    assert list(stages) == [s.name for s in load_recipe(find_recipe("tecnet-tiny")).stages]
    assert all(s["seconds"] > 0 and s["commands"] for name, s in stages.items() if name != "model")
    assert stages["dagger-1"]["figures"]["round"] == 1 and stages["dagger-1"]["figures"]["episodes"] == 4
    ft_config = yaml.safe_load((run / "ft-1" / "config.yaml").read_text())
    assert ft_config["data"]["correction_rounds"] == [1] and ft_config["loss"]["control_loss"] == "l1"
    choice = json.loads((run / "select" / "choice.json").read_text())
    assert choice["chosen"] in ("bc", "ft-1") and set(choice["scores"]) == {"bc", "ft-1"}
    runs = stages["heldout"]["figures"]["runs"]
    assert runs["one-shot-expert"]["via"] == "graph" and runs["one-shot-expert"]["episodes"] == 1
    assert runs["one-shot-poor"]["episodes"] == 2 and "bench tecnet" in runs["one-shot-poor"]["command"]

    model = run / "model"
    from il_robot.policies.tecnet import TecNetModel, TecNetPolicy
    policy = TecNetPolicy.conditioned(TecNetModel(model), [str(next((model / "demos").iterdir()))])
    assert policy.sentence is not None
    card = (model / "MODEL.md").read_text()
    assert report["commit"]["commit"] is None or report["commit"]["commit"] in card
    assert "| one-shot-expert (graph) | 1 |" in card and "il-robot eval --policy tecnet" in card

    before = (run / "report.json").read_text()
    assert main(["train", "tecnet", "--recipe", "tecnet-tiny", "--out", str(run)]) == 0
    assert json.loads((run / "report.json").read_text())["stages"] == json.loads(before)["stages"]


@pytest.mark.slow
@needs_torch
def test_tiny_planet_recipe_runs_end_to_end(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "planet", "--recipe", "planet-tiny", "--out", str(run)]) == 0
    report = json.loads((run / "report.json").read_text())
    assert (run / "episodes").is_dir() and report["stages"]["seed-0"]["figures"]["val_episodes"] == 1
    runs = report["stages"]["heldout"]["figures"]["runs"]
    assert runs["one-shot"]["via"] == "graph" and runs["in-process"]["via"] == "inprocess"
    from il_robot.policies.planet import PlanetModel
    assert PlanetModel(run / "model").meta and (run / "model" / "MODEL.md").is_file()
