"""il-robot demo: the package's main job in one command, a learned policy imitating from one demonstration.

The shipped TecNet watches one demonstration of a task it never trained on (a held-out task; the
demo ships in models/tecnet/demos) and then does that task itself through the ROS graph (simulator
-> policy -> inverse dynamics -> torques, lockstep). The scripted expert, which sees the objects'
true positions, does the same task as the comparison. Both rollouts are kept as videos, and one
picture (rollout.png) sets the demonstration, TecNet and the expert side by side, frame by frame.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from il_robot.cli import eval_cmd

POLICY = "tecnet"
COMPARISON = "scripted"
TASK_SET, TASK_INDEX = "heldout", 0   # the task of the shipped demo
PICTURE_COLUMNS = 6
TILE = 128            # px per frame in the picture
LABEL_WIDTH = 130     # px of row labels


def add_parser(sub) -> None:
    p = sub.add_parser(
        "demo", help="the main job: the shipped TecNet imitates one demo of an unseen task (1-2 min)",
        description="The shipped TecNet watches one demonstration of a held-out task (one it never "
                    "trained on; the demo ships in models/tecnet/demos) and does the task through the "
                    "ROS graph; the scripted expert (which sees the true object positions) does the "
                    "same task for comparison. Writes both rollout videos, a picture of the three "
                    "side by side (rollout.png) and the figures (JSON) to --out, and prints what they show.")
    p.add_argument("--out", default="runs/demo", help="output directory (default: runs/demo)")
    p.add_argument("--log-dir", help="node logs (default: a temporary directory per policy)")
    p.set_defaults(func=run)


def _eval(policy: str, out: Path, log_dir: str | None) -> dict:
    """One held-out episode of `policy` through `il-robot eval`, its figures read back."""
    parser = argparse.ArgumentParser(prog="il-robot")
    eval_cmd.add_parser(parser.add_subparsers())
    argv = ["eval", "--policy", policy, "--tasks", TASK_SET, "--episodes", "1", "--seed", "0",
            "--video", str(out / policy), "--json", str(out / f"{policy}.json")]
    if log_dir:
        argv += ["--log-dir", str(Path(log_dir) / policy)]
    args = parser.parse_args(argv)
    print(f"\n== {policy} ==", flush=True)
    args.func(args)
    return json.loads((out / f"{policy}.json").read_text())


def _video_frames(path: str) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(path)
    frames = []
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return frames
            frames.append(bgr)
    finally:
        cap.release()


def _row(label: str, frames: list[np.ndarray]) -> np.ndarray:
    """One labelled row of PICTURE_COLUMNS frames (BGR) spread over the episode."""
    import cv2

    picks = np.linspace(0, len(frames) - 1, PICTURE_COLUMNS).round().astype(int)
    tiles = [cv2.resize(frames[i], (TILE, TILE), interpolation=cv2.INTER_NEAREST) for i in picks]
    head = np.full((TILE, LABEL_WIDTH, 3), 255, np.uint8)
    for k, line in enumerate(label.split("\n")):
        cv2.putText(head, line, (6, 24 + 22 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.hstack([head, *tiles])


def write_picture(path: Path, demo_bag: str, tecnet: dict, scripted: dict) -> Path:
    """rollout.png: the demonstration, then TecNet's and the expert's rollouts, frame by frame."""
    import cv2

    from il_robot.data.bag_reader import images, read_bag

    demo = [rgb[..., ::-1] for rgb in images(read_bag(demo_bag)).rgb]
    rows = [_row("demonstration\n(watched once)", demo)]
    for name, figures in (("TecNet", tecnet), ("scripted expert", scripted)):
        episode = figures["per_episode"][0]
        outcome = f"{'success' if episode['success'] else 'failure'}, {episode['final_distance'] * 100:.1f} cm"
        rows.append(_row(f"{name}\n{outcome}", _video_frames(episode["video"])))
    if not cv2.imwrite(str(path), np.vstack(rows)):
        raise RuntimeError(f"could not write {path}")
    return path


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tecnet = _eval(POLICY, out, args.log_dir)
    scripted = _eval(COMPARISON, out, args.log_dir)
    demo_bag = tecnet["per_episode"][0]["demos"][0]
    picture = write_picture(out / "rollout.png", demo_bag, tecnet, scripted)
    t, s = tecnet["per_episode"][0], scripted["per_episode"][0]

    def said(e: dict) -> str:
        return f"{'pushed it home' if e['success'] else 'missed'} ({e['final_distance'] * 100:.1f} cm from the goal)"

    print(f"""
What you are looking at
  Task {t['task']}: push the target object onto the goal; a distractor object stands in the way. It is a
  held-out task: TecNet never saw it in training. It watched one demonstration of it
  ({demo_bag}),
  turned it into a task embedding, and drove the arm from the camera alone, the objects placed
  elsewhere than in the demonstration: TecNet {said(t)}.
  The scripted expert, which reads the objects' true positions, {said(s)}.
  Success means the target ends within 5 cm of the goal's centre.
  Both ran through the ROS 2 graph (sim -> policy -> inverse dynamics -> torques at 500 Hz), lockstep.

  picture: {picture}   (the demonstration, TecNet, the expert; left to right in time)
  videos:  {t['video']}
           {s['video']}
  figures: {out / (POLICY + '.json')}, {out / (COMPARISON + '.json')}
  More held-out tasks: il-robot eval --policy tecnet --demo-dir DIR (demos of each task; see README).""")
    return 0
