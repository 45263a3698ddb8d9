"""il-robot train: fit a learned policy to a built dataset (PyTorch, offline)."""

from __future__ import annotations

import os
from pathlib import Path

TORCH_HINT = "training needs the training extras (torch, onnx): IL_ROBOT_EXTRAS=train bash scripts/setup.sh"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train a policy from a dataset (needs the training extras)",
        description="Trains a learned policy on a dataset made by `il-robot dataset build`, then exports the "
                    "runtime model (ONNX + metadata.json) into OUT/onnx.")
    models = p.add_subparsers(dest="model", required=True, metavar="MODEL")
    t = models.add_parser(
        "tecnet", help="TecNet few-shot imitation (task embedding + control net)",
        description="Task-embedding network + control network (James et al., CoRL 2018). Batches of tasks from "
                    "the train split; validation on the val split every train.val_every steps. OUT gets "
                    "checkpoints/{last,best}.pt, train_log.csv, val_log.csv, curves.png, embeddings_val.png, "
                    "summary.json and onnx/ (the model for `--model-dir`). On several processes or machines, "
                    "start it with torchrun: `torchrun --nproc-per-node 2 -m il_robot.cli.main train tecnet ...` "
                    "(docs/recipes.md, \"Training on several processes or machines\").")
    add_run_arguments(t, "tecnet", data_help="dataset directory (il-robot dataset build)",
                      set_example="data.tasks_per_batch=8", resumable="--steps may raise the total")
    t.add_argument("--init-from", metavar="CKPT|MODEL_DIR",
                   help="start a new run from this checkpoint's weights and normalisation (its model settings; "
                        "data, loss and optimiser settings from --config/--set): fine-tuning with new settings "
                        "or data, where --resume would keep the old ones. An exported model directory works too "
                        "(e.g. the shipped models/tecnet): its weights are read back from the ONNX graphs")
    t.set_defaults(func=run_tecnet)

    pl = models.add_parser(
        "planet", help="PlaNet latent-dynamics world model for MPC (position latent or RSSM)",
        description="A world model for the CEM planner (Hafner et al., ICML 2019), conditioned on a demo's last "
                    "frame. DIR holds episodes collected in the simulator (npz); missing seed episodes are "
                    "collected first, and every collect.every steps the planner acts one episode that joins DIR. "
                    "--world-model positions (default, config/planet_positions.yaml): the latent is the tip and "
                    "the target, found in the frame by a task-matched locator, moved by learned push dynamics; "
                    "about 25 min here. OUT gets checkpoints/last.pt, train_log.csv, curves.png, "
                    "open_loop.{png,csv}, summary.json (with val-task planning) and onnx/. --world-model rssm "
                    "(config/planet.yaml): the paper's RSSM with conv encoder/decoder; OUT also gets val_log.csv "
                    "and open_loop.mp4. docs/planet.md has the details and the measurements.")
    pl.add_argument("--world-model", choices=("positions", "rssm"), default="positions",
                    help="positions (default): tip + target latent; rssm: the paper's recurrent state-space model")
    add_run_arguments(pl, "planet", data_help="episode directory (created and filled if empty)",
                      set_example="data.batch_size=16", resumable="--steps and --collect-every may change")
    pl.add_argument("--collect-every", type=int, metavar="N",
                    help="planner episodes every N training steps (overrides collect.every; 0 = none)")
    pl.add_argument("--init-from", metavar="CKPT",
                    help="start a new run from this checkpoint's weights (same model settings). rssm: an "
                         "auxiliary head the new config adds starts fresh; positions: a part given 0 steps "
                         "(--set train.locator_steps=0) keeps its weights")
    pl.set_defaults(func=run_planet)


def add_run_arguments(p, model: str, data_help: str, set_example: str, resumable: str) -> None:
    """What every `train MODEL` takes: data, run directory, config and overrides, steps, device, resume."""
    p.add_argument("--recipe", metavar="NAME|YAML",
                   help=f"run a whole recipe instead of one training: demos, dataset, training, DAgger rounds, "
                        f"selection on val, held-out evaluation and a model directory with its card, each stage "
                        f"into OUT and skipped when already done there (run the same command again to resume). "
                        f"A file, or a name under config/recipes/: {model} (the shipped model), {model}-tiny "
                        f"(a few minutes). Replaces --data, --config, --set, --steps, --init-from and --resume")
    p.add_argument("--until", metavar="STAGE", help="with --recipe: stop after this stage")
    p.add_argument("--nproc-per-node", type=int, default=1, metavar="N",
                   help="with --recipe: run the training stages on N processes of this machine under torchrun "
                        "(PyTorch DDP; data.tasks_per_batch must be a multiple of N). One training run: start "
                        "`il-robot train` itself with torchrun instead")
    p.add_argument("--data", metavar="DIR", help=data_help + " (required without --recipe)")
    p.add_argument("--out", required=True, metavar="DIR", help="run directory (created)")
    p.add_argument("--config", metavar="YAML",
                   help=f"hyperparameters (default: the package's config/{model}.yaml, documented there)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help=f"override one setting, e.g. --set {set_example} (repeatable)")
    p.add_argument("--steps", type=int, help="total training steps (overrides train.steps; with --resume, "
                                             "the step count to reach)")
    p.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda, cuda:1...")
    p.add_argument("--resume", action="store_true",
                   help=f"continue the run in OUT from checkpoints/last.pt (its own config; {resumable})")
    p.add_argument("--no-export", action="store_true", help="skip the ONNX export at the end")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def default_config(model: str):
    """The package's config/<model>.yaml, or None when it is not installed."""
    from il_robot.paths import config_file

    try:
        path = config_file(f"{model}.yaml")
    except FileNotFoundError:
        return None
    return path if path.is_file() else None


def run_recipe(args) -> int:
    """`train MODEL --recipe R --out RUN`: the stages of R, resumable; see il_robot.recipes."""
    from il_robot.recipes.runner import run_recipe as run
    from il_robot.recipes.spec import find_recipe, load_recipe

    given = [flag for flag, value in (("--data", args.data), ("--config", args.config), ("--set", args.set),
                                      ("--steps", args.steps), ("--init-from", getattr(args, "init_from", None)),
                                      ("--resume", args.resume), ("--no-export", args.no_export)) if value]
    if given:
        raise ValueError(f"{', '.join(given)}: not with --recipe (the recipe holds the settings; running it "
                         "again with the same --out resumes it)")
    path = find_recipe(args.recipe)
    if load_recipe(path).model != args.model:
        raise ValueError(f"{path} is a {load_recipe(path).model} recipe, not {args.model}")
    report = run(path, args.out, device=args.device, until=args.until, nproc_per_node=args.nproc_per_node)
    print(f"run directory: {args.out} (report.json, log.txt"
          f"{', model/ with MODEL.md' if (Path(args.out) / 'model' / 'MODEL.md').is_file() else ''}); "
          f"{len(report['stages'])} stages done")
    return 0


def _need_data(args) -> None:
    if args.until:
        raise ValueError("--until is for --recipe")
    if args.nproc_per_node != 1:
        raise ValueError("--nproc-per-node is for --recipe; for one training run, start it with torchrun: "
                         f"torchrun --nproc-per-node {args.nproc_per_node} -m il_robot.cli.main train ...")
    if not args.data:
        raise ValueError("--data DIR is required (or --recipe)")


def run_tecnet(args) -> int:
    if args.recipe:
        return run_recipe(args)
    _need_data(args)
    # OpenMP threads that spin while waiting collapse throughput (10x measured) when another process
    # holds a core; passive waiting keeps all-cores training as fast as one thread on a busy machine.
    # libgomp reads this once, when torch loads, hence before the import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        from il_robot.learning.tecnet import train as tecnet_train
        from il_robot.learning.tecnet.config import load_config
    except ImportError as err:
        raise RuntimeError(f"{TORCH_HINT} ({err})") from None
    if args.resume and (args.config or args.set or args.init_from):
        raise ValueError("--resume continues with the run's own config and weights; drop --config/--set/--init-from")
    cfg = None if args.resume else load_config(args.config or default_config("tecnet"), args.set)
    summary = tecnet_train.train(args.data, args.out, cfg, steps=args.steps, device=args.device,
                                 resume=args.resume, progress=not args.quiet, export=not args.no_export,
                                 init_from=args.init_from)
    if not summary:         # a process of a torchrun training other than rank 0: rank 0 reports
        return 0
    final_val = summary.get("final_val") or {}
    if final_val:
        print(f"val: embedding accuracy {float(final_val['val_embedding_accuracy']):.2f}, control rmse "
              f"{float(final_val['val_control_rmse_mps']):.4f} m/s (step {final_val['step']})")
    print(f"run directory: {args.out} (summary.json, curves.png{', onnx/' if 'onnx' in summary else ''})")
    return 0


def run_planet(args) -> int:
    if args.recipe:
        return run_recipe(args)
    _need_data(args)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # see run_tecnet
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        from il_robot.learning.planet import rssm_config, rssm_train
    except ImportError as err:
        raise RuntimeError(f"{TORCH_HINT} ({err})") from None
    if args.resume and (args.config or args.set or args.init_from):
        raise ValueError("--resume continues with the run's own config and weights; drop --config/--set/--init-from")
    from il_robot.learning.distributed import world_from_env

    if world_from_env().distributed:
        raise ValueError("PlaNet trains in one process (its networks are small and its planner episodes join the "
                         "data as it trains); start it without torchrun")
    if args.world_model == "positions":
        return run_planet_positions(args)
    cfg = None if args.resume else rssm_config.load_config(args.config or default_config("planet"), args.set)
    summary = rssm_train.train(args.data, args.out, cfg, steps=args.steps, device=args.device, resume=args.resume,
                               progress=not args.quiet, export=not args.no_export,
                               collect_every=args.collect_every, init_from=args.init_from)
    final = summary.get("final_train") or {}
    if final:
        print(f"step {final['step']}: loss {float(final['loss']):.1f} (image {float(final['image_loss']):.1f}, "
              f"reward rmse {float(final['reward_rmse']):.4f} m, kl {float(final['kl']):.2f})")
    print(f"run directory: {args.out} (summary.json, curves.png, open_loop.png/.mp4"
          f"{', onnx/' if 'onnx' in summary else ''})")
    return 0


def run_planet_positions(args) -> int:
    from il_robot.learning.planet import positions_config, positions_train

    refused = [flag for flag, given in (("--resume", args.resume), ("--steps", args.steps is not None)) if given]
    if refused:
        raise ValueError(f"{', '.join(refused)}: not for --world-model positions (a run takes about 25 min; "
                         "set the parts' steps with --set train.locator_steps=N / train.dynamics_steps=N, and "
                         "start from another run's weights with --init-from CKPT)")
    if args.device != "cpu":
        raise ValueError("--world-model positions trains on the CPU (its networks are small); drop --device")
    cfg = positions_config.load_config(args.config or default_config("planet_positions"), args.set)
    if args.collect_every is not None:
        cfg.collect.every = args.collect_every
    summary = positions_train.train(args.data, args.out, cfg, progress=not args.quiet,
                                    export=not args.no_export, init_from=args.init_from)
    v = summary.get("val_planning")
    if v:
        print(f"val tasks: {v['successes']}/{v['episodes']} pushed home by the planner")
    print(f"run directory: {args.out} (summary.json, curves.png, open_loop.png{', onnx/' if 'onnx' in summary else ''})")
    return 0
