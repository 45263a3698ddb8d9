"""A recipe: the named stages that make a shipped model, read strictly from YAML.

A typo in a recipe must fail before an hour of work, not be ignored, so every stage kind declares
its keys, and references between stages (a train stage's dataset, a DAgger stage's model) must name
an earlier stage of the right kind. One compound kind, `dagger-rounds`, stands for the DAgger rounds
and fine-tunes that alternate; it is written out into plain stages as it is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

MODELS = ("tecnet", "planet")

REQUIRED = object()
# kind -> {key: default}. Every key a stage may carry is here.
STAGE_KEYS: dict[str, dict] = {
    "record": {"tasks": REQUIRED, "num_tasks": REQUIRED, "first_task": 0, "demos_per_task": 1,
               "operators": ["expert"], "seed": 0, "workers": 0},
    "dataset": {"demos": REQUIRED},
    "train": {"dataset": "", "init_from": "", "steps": None, "config": "", "set": {}, "rounds": [],
              "world_model": "positions", "collect_every": None},
    "dagger": {"dataset": REQUIRED, "model": REQUIRED, "labeller": "continuous", "beta": 0.0, "num_tasks": None,
               "observation_delay": 0.0, "workers": 0},
    "select": {"candidates": REQUIRED, "demos": "", "tasks": "val", "episodes": 20, "shots": 1,
               "demo_skill": "expert", "workers": 0},
    "eval": {"model": REQUIRED, "demos": REQUIRED, "tasks": "heldout", "runs": REQUIRED},
    "package": {"model": REQUIRED, "demos": REQUIRED, "evals": [], "ship_demo_skill": "expert"},
}
EVAL_RUN_KEYS = {"name": REQUIRED, "episodes": REQUIRED, "shots": 1, "demo_skill": "any", "via": "graph", "workers": 0}
# Which kinds a reference may name: a model comes from a train stage or a selection among them.
MODEL_KINDS = ("train", "select")
REFERENCES = {  # kind -> {key: kinds it may name}
    "dataset": {"demos": ("record",)},
    "train": {"dataset": ("dataset",), "init_from": MODEL_KINDS, "rounds": ("dagger",)},
    "dagger": {"dataset": ("dataset",), "model": MODEL_KINDS},
    "select": {"candidates": ("train",), "demos": ("record",)},
    "eval": {"model": MODEL_KINDS, "demos": ("record",)},
    "package": {"model": MODEL_KINDS, "demos": ("record",), "evals": ("eval",)},
}


# `count` DAgger rounds, each followed by a fine-tune, as if written out: dagger-1 (the `model` drives),
# ft-1 (from `model`, on round 1), dagger-2 (ft-1 drives), ft-2 (from ft-1, on rounds 1-2), ... Rounds are
# numbered on from the recipe's earlier DAgger rounds, so a second such stage goes on at dagger-6. With
# `finetune: {latest_rounds: K}` a fine-tune learns from the latest K rounds only (0: every round so far),
# the rounds of its own, better driver. A select stage's candidates may name the compound stage for all
# its fine-tunes.
ROUNDS_KIND = "dagger-rounds"
ROUNDS_KEYS = {"count": REQUIRED, "finetune": REQUIRED, **STAGE_KEYS["dagger"]}
FINETUNE_KEYS = {"steps": None, "config": "", "set": {}, "latest_rounds": 0}   # what a fine-tune of the rounds may set


class RecipeError(ValueError):
    pass


@dataclass
class Stage:
    name: str
    kind: str
    settings: dict

    def __getitem__(self, key):
        return self.settings[key]


@dataclass
class Recipe:
    path: Path
    model: str
    description: str
    stages: list[Stage] = field(default_factory=list)
    compounds: dict[str, list[str]] = field(default_factory=dict)   # a dagger-rounds stage -> the stages it stands for

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def fine_tunes(self, compound: str) -> list[str]:
        """The fine-tunes a dagger-rounds stage stands for (what a select stage naming it means): it is
        written out as dagger-N, ft-N pairs."""
        return self.compounds[compound][1::2]

    def dagger_round(self, name: str) -> int:
        """DAgger rounds are numbered by their order in the recipe (1, 2, ...): a stage keeps its round."""
        return [s.name for s in self.stages if s.kind == "dagger"].index(name) + 1


def _whole_number(value, lowest: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= lowest


def _filled(keys: dict, values: dict, where: str) -> dict:
    unknown = sorted(set(values) - set(keys))
    if unknown:
        raise RecipeError(f"{where}: unknown key(s) {unknown}; known: {sorted(keys)}")
    missing = sorted(k for k, d in keys.items() if d is REQUIRED and values.get(k) is None)
    if missing:
        raise RecipeError(f"{where}: missing {missing}")
    return {k: values.get(k, d) for k, d in keys.items()}


def _names(value) -> list[str]:
    return [v for v in ([value] if isinstance(value, str) else list(value or [])) if v]


# Keys that only one model's stages use: a recipe that sets them for the other model is wrong.
MODEL_ONLY = {"tecnet": {"train": ("dataset", "rounds")},
              "planet": {"train": ("world_model", "collect_every")}}


def _check_for_model(model: str, kind: str, settings: dict, raw: dict, where: str) -> None:
    for other, kinds in MODEL_ONLY.items():
        if other != model:
            wrong = sorted(k for k in kinds.get(kind, ()) if k in raw)
            if wrong:
                raise RecipeError(f"{where}: {wrong} are for {other} recipes, this one is {model}")
    if model == "tecnet" and kind == "train" and not settings["dataset"]:
        raise RecipeError(f"{where}: a tecnet train stage needs dataset: <a dataset stage>")
    if model == "tecnet" and kind == "select" and not settings["demos"]:
        raise RecipeError(f"{where}: a tecnet select stage needs demos: <a record stage of val demos>")
    if model == "planet" and kind == "dagger":
        raise RecipeError(f"{where}: DAgger rounds are for tecnet recipes")


def _written_out(name: str, raw: dict, where: str, rounds_before: int) -> list[tuple[str, dict]]:
    """A `dagger-rounds` stage as the plain stages it stands for (any other stage as itself)."""
    if raw.get("kind") != ROUNDS_KIND:
        return [(name, raw)]
    s = _filled(ROUNDS_KEYS, {k: v for k, v in raw.items() if k != "kind"}, f"{where} ({ROUNDS_KIND})")
    if not _whole_number(s["count"], 1):
        raise RecipeError(f"{where}: count must be a whole number of rounds >= 1, got {s['count']!r}")
    if not isinstance(s["finetune"], dict):
        raise RecipeError(f"{where}: finetune is a mapping of {sorted(FINETUNE_KEYS)}")
    finetune = _filled(FINETUNE_KEYS, s["finetune"], f"{where} finetune")
    latest = finetune.pop("latest_rounds")
    if not _whole_number(latest, 0):
        raise RecipeError(f"{where}: finetune latest_rounds must be a whole number >= 0 (0: every round), "
                          f"got {latest!r}")
    dagger = {k: s[k] for k in STAGE_KEYS["dagger"]}
    stages, model = [], s["model"]
    for i in range(rounds_before + 1, rounds_before + s["count"] + 1):
        first = max(1, i - latest + 1) if latest else 1
        stages.append((f"dagger-{i}", {"kind": "dagger", **dagger, "model": model}))
        stages.append((f"ft-{i}", {"kind": "train", "dataset": s["dataset"], "init_from": model,
                                   "rounds": [f"dagger-{k}" for k in range(first, i + 1)], **finetune}))
        model = f"ft-{i}"
    return stages


def parse_recipe(values: dict, path: Path) -> Recipe:
    if not isinstance(values, dict):
        raise RecipeError(f"{path}: a recipe is a mapping with model, description and stages")
    unknown = sorted(set(values) - {"model", "description", "stages"})
    if unknown:
        raise RecipeError(f"{path}: unknown key(s) {unknown}; known: ['description', 'model', 'stages']")
    model = values.get("model")
    if model not in MODELS:
        raise RecipeError(f"{path}: model must be one of {list(MODELS)}, got {model!r}")
    stages_in = values.get("stages")
    if not isinstance(stages_in, dict) or not stages_in:
        raise RecipeError(f"{path}: stages must be a non-empty mapping name -> settings")
    recipe = Recipe(Path(path), model, str(values.get("description", "")).strip())
    seen: dict[str, str] = {}
    written_out = []
    for name, raw in stages_in.items():
        where = f"{path}: stage {name!r}"
        if not isinstance(raw, dict) or raw.get("kind") not in (*STAGE_KEYS, ROUNDS_KIND):
            raise RecipeError(f"{where}: needs kind: one of {sorted((*STAGE_KEYS, ROUNDS_KIND))}")
        stages = _written_out(str(name), raw, where, sum(r["kind"] == "dagger" for _, r, _ in written_out))
        if raw["kind"] == ROUNDS_KIND:
            recipe.compounds[str(name)] = [n for n, _ in stages]
        written_out += [(n, r, where if n == name else f"{where} ({n})") for n, r in stages]
    for name, raw, where in written_out:
        if not str(name).replace("-", "").replace("_", "").isalnum():
            raise RecipeError(f"{where}: a stage name is letters, digits, - and _ (it names a directory)")
        if name in seen or name in recipe.compounds:
            raise RecipeError(f"{where}: there is already a stage {name!r} (a dagger-rounds stage's rounds are "
                              "named dagger-1, ft-1, dagger-2, ...)")
        kind = raw["kind"]
        if kind == "select" and raw.get("candidates"):
            expanded = [recipe.fine_tunes(n) if n in recipe.compounds else [n] for n in _names(raw["candidates"])]
            raw = {**raw, "candidates": [c for names in expanded for c in names]}
        settings = _filled(STAGE_KEYS[kind], {k: v for k, v in raw.items() if k != "kind"}, f"{where} ({kind})")
        for key, kinds in REFERENCES.get(kind, {}).items():
            for ref in _names(settings[key]):
                if kind == "train" and key == "init_from" and ref not in seen:
                    continue    # a path to a checkpoint or a model directory
                if seen.get(ref) not in kinds:
                    raise RecipeError(f"{where}: {key} {ref!r} is not an earlier stage of kind {' or '.join(kinds)}")
        _check_for_model(model, kind, settings, raw, where)
        if kind == "eval":
            runs = settings["runs"]
            if not isinstance(runs, list) or not runs:
                raise RecipeError(f"{where}: runs must be a list of {{name, episodes, shots, demo_skill, via}}")
            settings["runs"] = [_filled(EVAL_RUN_KEYS, r or {}, f"{where} run {i}") for i, r in enumerate(runs)]
            for r in settings["runs"]:
                if r["via"] not in ("graph", "inprocess"):
                    raise RecipeError(f"{where}: run {r['name']!r}: via is graph or inprocess")
        if not isinstance(settings.get("set", {}), dict):
            raise RecipeError(f"{where}: set is a mapping section.key: value")
        seen[str(name)] = kind
        recipe.stages.append(Stage(str(name), kind, settings))
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    path = Path(path)
    try:
        values = yaml.safe_load(path.read_text())
    except OSError as err:
        raise RecipeError(f"cannot read recipe {path}: {err}") from None
    except yaml.YAMLError as err:
        raise RecipeError(f"{path}: not valid YAML: {err}") from None
    return parse_recipe(values, path)


def find_recipe(name_or_path: str) -> Path:
    """A recipe file, or the name of one under the package's config/recipes/ (e.g. `tecnet`)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    from il_robot.paths import config_file

    try:
        candidate = config_file(f"recipes/{name_or_path.removesuffix('.yaml')}.yaml")
    except FileNotFoundError:
        candidate = None
    if candidate is not None and Path(candidate).is_file():
        return Path(candidate)
    raise RecipeError(f"no recipe {name_or_path!r}: not a file, nor a name under config/recipes/")
