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


def run_tecnet(args) -> int:
    try:
        from il_robot.learning.onnx_export import export_tecnet
    except ImportError as err:
        raise RuntimeError(f"{TORCH_HINT} ({err})") from None
    meta = export_tecnet(args.checkpoint, args.out, force=args.force)
    diffs = ", ".join(f"{k} {v:.1e}" for k, v in meta["verification"]["max_abs_diff"].items())
    print(f"exported {args.checkpoint} (step {meta['training']['steps']}) to {args.out}; "
          f"torch vs onnxruntime max abs diff: {diffs}")
    return 0
