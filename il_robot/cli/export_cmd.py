"""il-robot export: a training checkpoint -> the ONNX model directory the runtime policies read."""

from __future__ import annotations

from il_robot.cli.train_cmd import TORCH_HINT


def add_parser(sub) -> None:
    p = sub.add_parser(
        "export", help="export a checkpoint to ONNX + metadata.json (needs the training extras)",
        description="Writes the runtime model directory from a training checkpoint and checks that onnxruntime "
                    "reproduces torch (max abs diff <= 1e-4) before putting it in place.")
    models = p.add_subparsers(dest="model", required=True, metavar="MODEL")
    t = models.add_parser(
        "tecnet", help="TecNet: embedding.onnx, control.onnx, metadata.json",
        description="embedding.onnx: frames [N,6,64,64] (first+last demo frames, 0..255) -> embedding [N,20]; "
                    "control.onnx: image [N,3,64,64], sentence [N,20], state [N,14] (normalised) -> action [N,3] "
                    "(normalised); metadata.json: shapes, normalisation, training data, git commit, versions.")
    t.add_argument("--checkpoint", required=True, metavar="CKPT", help="e.g. RUN/checkpoints/best.pt")
    t.add_argument("--out", required=True, metavar="DIR", help="model directory, e.g. models/tecnet")
    t.add_argument("--force", action="store_true", help="replace DIR if it exists (after the new one is verified)")
    t.set_defaults(func=run_tecnet)
    pl = models.add_parser(
        "planet", help="PlaNet: task.onnx, observe.onnx, imagine_h<H>.onnx, metadata.json",
        description="task.onnx: frame [N,3,64,64] (a demo's last frame, 0..255) -> task [N,T]; observe.onnx: "
                    "belief [N,D], state [N,S], action [N,3] (m/s), image [N,3,64,64], joints [N,14] (raw) -> "
                    "posterior_belief, posterior_state (one filtering step); imagine_h<H>.onnx: belief, state, "
                    "actions [N,H,3] (m/s), task -> returns [N], rewards [N,H] (J candidates in one call); "
                    "metadata.json: shapes, normalisation, action bound and repeat, reward, planner defaults, "
                    "training data, git commit.")
    pl.add_argument("--checkpoint", required=True, metavar="CKPT", help="e.g. RUN/checkpoints/last.pt")
    pl.add_argument("--out", required=True, metavar="DIR", help="model directory, e.g. models/planet")
    pl.add_argument("--horizons", metavar="H,H", help="imagine graphs to export besides the planner's horizon "
                                                       "(default: the run's export.horizons, e.g. 12)")
    pl.add_argument("--force", action="store_true", help="replace DIR if it exists (after the new one is verified)")
    pl.set_defaults(func=run_planet)


def run_tecnet(args) -> int:
    try:
        from il_robot.learning.tecnet.export import export_tecnet
    except ImportError as err:
        raise RuntimeError(f"{TORCH_HINT} ({err})") from None
    meta = export_tecnet(args.checkpoint, args.out, force=args.force)
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in meta["verification"]["max_abs_diff"].items())
    print(f"exported {args.checkpoint} (step {meta['training']['steps']}) to {args.out}; "
          f"torch vs onnxruntime max abs diff: {diffs}")
    return 0


def run_planet(args) -> int:
    try:
        from il_robot.learning.planet.export import export_planet
    except ImportError as err:
        raise RuntimeError(f"{TORCH_HINT} ({err})") from None
    horizons = [int(h) for h in args.horizons.split(",") if h.strip()] if args.horizons else None
    meta = export_planet(args.checkpoint, args.out, force=args.force, horizons=horizons)
    worst = max(meta["verification"]["max_abs_diff"].values())
    print(f"exported {args.checkpoint} (step {meta['training']['steps']}) to {args.out}: "
          f"{', '.join(m['file'] for m in meta['models'].values())}; torch vs onnxruntime max abs diff {worst:.1e}")
    return 0
