"""il-robot dataset: check demo bags, build the training dataset from them, export them for LeRobot."""

from __future__ import annotations

import os
from pathlib import Path

from il_robot.data.bag_format import INCOMPLETE_SUFFIX

STORAGE_SUFFIXES = (".mcap", ".db3")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "dataset", help="check demo bags, build the training dataset",
        description="Demo bags are rosbag2 directories, one episode each (docs/dataset.md lists the topics). "
                    "'check' reports what is wrong with a bag; 'build' turns bags into a dataset directory "
                    "(one .npz per episode under train/ val/ heldout/, split by task set, plus dataset.json); "
                    "'add' adds more bags to one; 'export' writes them as a LeRobotDataset.")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    b = verbs.add_parser(
        "build", help="bags -> dataset directory",
        description="Checks every bag, aligns one sample per camera frame (joint state at or before the frame, "
                    "the action stamped with it, else the previous one held) and writes the dataset. It is "
                    "built in OUT.partial and renamed to OUT only when complete; a failed or interrupted "
                    "build leaves nothing behind. A bad bag fails the build unless --skip-bad.")
    _bag_conversion_arguments(b)
    b.add_argument("--out", required=True, metavar="DIR", help="dataset directory to create")
    b.add_argument("--force", action="store_true",
                   help="replace an existing dataset at DIR (only once the new one is complete)")
    b.set_defaults(func=run_build)

    a = verbs.add_parser(
        "add", help="add more bags to an existing dataset, keeping its DAgger episodes",
        description="Converts the bags that DATASET does not hold yet (by path; the rest are counted and "
                    "skipped, so re-running over a growing demo directory adds only the new ones) and keeps "
                    "everything DATASET holds, DAgger episodes included. dataset.json is rewritten only "
                    "once all new bags are in; a failure leaves DATASET as it was. New train tasks join "
                    "the next `dataset dagger` round.")
    a.add_argument("dataset", metavar="DATASET", help="dataset directory (il-robot dataset build), changed in place")
    _bag_conversion_arguments(a)
    a.set_defaults(func=run_add)

    c = verbs.add_parser(
        "check", help="report what is wrong with bags",
        description="Prints 'OK <bag>: frames, duration, message counts' or the bag's problems (truncated or "
                    "corrupt file, missing topics, stamps out of order, gaps, wrong image encoding, bad "
                    "episode JSON, unknown joints). Exit status 1 when any bag is bad.")
    c.add_argument("bags", nargs="+", metavar="BAG",
                   help="bag directory, or a directory searched recursively for bags")
    c.add_argument("--json", metavar="FILE", help="also write the reports as JSON")
    c.set_defaults(func=run_check)

    e = verbs.add_parser(
        "export", help="bags or a dataset -> another format (LeRobotDataset v3)",
        description="Writes the demos as a LeRobotDataset (codebase v3.0), the format LeRobot's ACT and "
                    "Diffusion Policy train on: the camera as AV1 video (videos/observation.images.front/), "
                    "joint positions, joint velocities and tool-tip position as observation.state (17), the "
                    "tool-tip velocity command as action (3), 20 frames per second, the task in words ('push "
                    "the red box to the goal') as each episode's task, and per episode in "
                    "meta/episodes/: operator, skill, success, final_distance, task_name, split (train/val/"
                    "heldout: filter on it, LeRobot's own split is all 'train'), source. Bags are checked "
                    "as by 'check'. Written in OUT.partial, renamed to OUT when complete. Read it back with "
                    "lerobot's LeRobotDataset(REPO_ID, root=OUT). docs/dataset.md: the columns.")
    e.add_argument("source", nargs="+", metavar="BAGS_OR_DATASET",
                   help="bag directories or directories searched for bags, or one dataset directory "
                        "(il-robot dataset build)")
    e.add_argument("--format", required=True, choices=["lerobot"], help="the output format")
    e.add_argument("--out", required=True, metavar="DIR", help="directory to create")
    e.add_argument("--force", action="store_true", help="replace an existing export at DIR")
    e.add_argument("--skip-bad", action="store_true", help="leave bad bags out instead of failing")
    e.add_argument("--vcodec", choices=["libsvtav1", "h264"], default="libsvtav1",
                   help="video codec: AV1 (default, as LeRobot writes) or H.264 (for older decoders)")
    e.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=run_export)

    d = verbs.add_parser(
        "dagger", help="add corrective episodes: a TecNet model drives, the scripted expert or a person labels",
        description="DAgger: for each train task, one episode driven by the exported TecNet model (conditioned "
                    "on the task's first demo in the dataset). The episodes join DATASET as control-only "
                    "episodes (skill 'correction'); then continue training with `il-robot train tecnet "
                    "--init-from`. An expert labeller (simulator only: it reads the object poses) records its "
                    "action at every frame the model reaches, in parallel in-process episodes. --labeller human "
                    "(human-gated DAgger, the real-arm way): through the ROS graph, an --operator watches and "
                    "takes over where the model goes wrong (joystick takeover button, or t at the keyboard); "
                    "the frames they drove, labelled with their command, are the correction episodes.")
    d.add_argument("dataset", metavar="DATASET", help="dataset directory (il-robot dataset build), changed in place")
    d.add_argument("--model-dir", required=True, metavar="DIR", help="exported TecNet model that drives")
    d.add_argument("--num-tasks", type=int, default=None, help="train tasks 0..N-1 (default: all in the dataset)")
    d.add_argument("--round", type=int, default=1, help="DAgger round (names the episodes, varies the seeds)")
    d.add_argument("--beta", type=float, default=0.0,
                   help="probability per tick that the expert's action is executed instead of the model's "
                        "(1: the expert drives, giving extra expert-labelled episodes at new placements quickly)")
    d.add_argument("--labeller", choices=LABELLERS + ("human",), default="continuous",
                   help="the expert that labels: continuous (default; what the shipped model's last fine-tune "
                        "learned from: its action is a function of the current scene alone, with no edge near "
                        "the approach point for a learner a little off to hover on), phased (the demonstrating "
                        "expert's phases with the descent funnel; after a slip it says 'up' where on arrival it "
                        "says 'down'), memoryless (scene alone, but 'rise first' and 'descend' meet at a line "
                        "2 cm from the approach point) or low-lift (phased, but a lift after a slip ends at the "
                        "funnel's height); human: a person or the simulated corrector takes over (--operator). "
                        "docs/tecnet.md: what fine-tunes on each gave")
    d.add_argument("--observation-delay", type=float, default=0.0, metavar="S",
                   help="expert labellers: the model acts on the camera frame (and the joint state of its instant) "
                        "S seconds old, as on an arm whose camera lags, while the expert labels the present: a "
                        "fine-tune on such rounds learns to act for when its command lands (0..0.5; default 0). "
                        "docs/realtime.md: what it bought")
    d.add_argument("--operator", default="sim:expert",
                   help="--labeller human: who corrects: joy (a person's joystick, a joy driver on /joy), keyboard "
                        "(this terminal) or sim:expert|okay|poor (the simulated corrector, unattended; default)")
    d.add_argument("--bags", metavar="DIR", help="--labeller human: where the round's bags go (default "
                   "DATASET-corrections/roundR beside the dataset); bags already there are not recorded again")
    d.add_argument("--episode-duration", type=float, default=10.0, help="--labeller human: s of sim time per episode")
    d.add_argument("--workers", type=int, default=max(1, os.cpu_count() or 1), help="parallel sim processes")
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    d.add_argument("--json", metavar="FILE", help="also write the round's summary as JSON")
    d.set_defaults(func=run_dagger)


def _bag_conversion_arguments(p) -> None:
    """The bags and options that `build` and `add` share: both convert bags into a dataset."""
    p.add_argument("bags", nargs="+", metavar="BAG",
                   help="bag directory, or a directory searched recursively for bags")
    p.add_argument("--skip-bad", action="store_true",
                   help="leave bad bags out (listed in the summary) instead of failing")
    p.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _looks_like_bag(d: Path) -> bool:
    return (d / "metadata.yaml").is_file() or any(f.suffix in STORAGE_SUFFIXES for f in d.iterdir() if f.is_file())


def find_bags(paths: list[str], strict: bool = True, incomplete: bool = False,
              left_out: list[str] | None = None) -> list[str]:
    """Bag directories named or found below the given paths (a directory with metadata.yaml or a
    storage file). In-progress recordings (*.partial) are skipped when searching below a directory,
    and so are bags the recorder marked incomplete (*_incomplete, listed in left_out) unless
    `incomplete` (check reports them as bad). strict: a path that does not exist or holds no bag is
    an error; otherwise it is passed on (for `check` to report)."""
    found: list[str] = []
    skipped = ((".partial",) if incomplete else (".partial", INCOMPLETE_SUFFIX))
    for arg in paths:
        root = Path(arg)
        if not root.exists() or not root.is_dir() or _looks_like_bag(root):
            if strict and not root.exists():
                raise FileNotFoundError(f"no such bag or directory: {arg}")
            found.append(arg)
            continue
        bags = sorted(d for d in root.rglob("*") if d.is_dir() and _looks_like_bag(d)
                      and not any(part.endswith(".partial") for part in d.relative_to(root).parts))
        below = [str(d) for d in bags if not any(p.endswith(skipped) for p in d.relative_to(root).parts)]
        if left_out is not None:
            left_out += [str(d) for d in bags if str(d) not in below]
        if not below and strict:
            flagged = f" ({len(bags)} the recorder marked incomplete)" if bags else ""
            raise FileNotFoundError(f"no bags (directories with metadata.yaml) under {arg}{flagged}")
        found += below or [arg]
    return list(dict.fromkeys(found))


def _rate(x) -> str:
    return "-" if x is None else f"{x * 100:.0f}%"


def print_summary(summary: dict, out: str) -> None:
    print(f"dataset {out}: {summary['episodes']} episodes, {summary['tasks']} tasks, {summary['frames']} frames")
    print(f"  {'split':<10}{'episodes':>10}{'tasks':>8}{'frames':>9}")
    for split, s in summary["splits"].items():
        print(f"  {split:<10}{s['episodes']:>10}{s['tasks']:>8}{s['frames']:>9}")
    print(f"  {'skill':<10}{'episodes':>10}{'success':>9}  (success rate over episodes with a result)")
    for skill, s in summary["success_by_skill"].items():
        print(f"  {skill:<10}{s['episodes']:>10}{_rate(s['success_rate']):>9}")
    for s in summary["skipped"]:
        print(f"  skipped {s['bag']}: {'; '.join(s['problems'])}")


def _say_left_out(bags: list[str]) -> None:
    for bag in bags:
        print(f"left out {bag}: the recorder marked it incomplete (`il-robot dataset check` says why)")


def run_build(args) -> int:
    from il_robot.cli.json_file import write_json
    from il_robot.data.dataset import build_dataset

    left_out: list[str] = []
    bags = find_bags(args.bags, left_out=left_out)
    _say_left_out(left_out)
    try:
        summary = build_dataset(bags, args.out, force=args.force, skip_bad=args.skip_bad,
                                progress=not args.quiet)
    except OSError as err:
        raise RuntimeError(f"cannot write dataset {args.out}: {err}") from None
    print_summary(summary, args.out)
    write_json(args.json, summary)
    return 0


def run_add(args) -> int:
    from il_robot.cli.json_file import write_json
    from il_robot.data.dataset import add_to_dataset

    left_out: list[str] = []
    bags = find_bags(args.bags, left_out=left_out)
    _say_left_out(left_out)
    try:
        summary = add_to_dataset(bags, args.dataset, skip_bad=args.skip_bad,
                                 progress=not args.quiet)
    except OSError as err:
        raise RuntimeError(f"cannot write dataset {args.dataset}: {err}") from None
    print(f"added {summary['added']} bag(s); {summary['already_in']} were in the dataset already")
    print_summary(summary, args.dataset)
    write_json(args.json, summary)
    return 0


def run_check(args) -> int:
    from il_robot.cli.json_file import write_json
    from il_robot.data.bag_check import inspect_bag

    reports = []
    for bag in find_bags(args.bags, strict=False, incomplete=True):
        report = inspect_bag(bag)
        if report.ok:
            s = report.summary
            counts = ", ".join(f"{t} {n}" for t, n in s["counts"].items())
            print(f"OK {bag}: {s['frames']} frames, {s['duration']:.1f} s, {counts}")
            reports.append({"bag": bag, "ok": True, "summary": s})
        else:
            print(f"BAD {bag}:")
            for p in report.problems:
                print(f"  - {p}")
            reports.append({"bag": bag, "ok": False, "problems": [str(p) for p in report.problems]})
    bad = sum(not r["ok"] for r in reports)
    if len(reports) > 1:
        print(f"{len(reports) - bad} of {len(reports)} bags OK")
    write_json(args.json, {"bags": reports})
    return 1 if bad else 0


def run_export(args) -> int:
    from il_robot.cli.json_file import write_json
    from il_robot.data.lerobot_export import export_lerobot, is_dataset

    source = args.source
    if not any(is_dataset(s) for s in source):
        left_out: list[str] = []
        source = find_bags(source, left_out=left_out)
        _say_left_out(left_out)
    try:
        summary = export_lerobot(source, args.out, force=args.force, skip_bad=args.skip_bad, vcodec=args.vcodec,
                                 progress=not args.quiet)
    except OSError as err:
        raise RuntimeError(f"cannot write {args.out}: {err}") from None
    print(f"LeRobot dataset {summary['out']}: {summary['episodes']} episodes, {summary['frames']} frames at "
          f"{summary['fps']} fps, {summary['tasks']} task strings, {summary['video_codec']} video, "
          f"{summary['bytes_on_disk'] / 1e6:.1f} MB in {summary['wall_time']:.1f} s")
    for skill, s in summary["by_skill"].items():
        print(f"  {skill:<10}{s['episodes']:>5} episodes, {s['successes']} succeeded")
    for s in summary["skipped"]:
        print(f"  skipped {s['bag']}: {'; '.join(s['problems'])}")
    if summary["frame_gaps"]:
        print(f"  note: {summary['frame_gaps']} gaps in the sources' frame times (dropped camera frames or "
              f"DAgger takeover segments); LeRobot's timestamps are frame_index / {summary['fps']}")
    write_json(args.json, summary)
    return 0


LABELLERS = ("phased", "memoryless", "low-lift", "continuous")     # = il_robot.learning.dagger.LABELLERS (test_world pins it)


def run_dagger(args) -> int:
    if args.labeller == "human":
        if args.observation_delay:
            raise ValueError("--observation-delay is for the expert labellers: a person corrects at the real lag")
        return run_human_dagger(args)
    from il_robot.learning.dagger import collect_corrections

    summary = collect_corrections(args.dataset, args.model_dir, args.round, args.beta, args.num_tasks,
                                  args.workers, progress=not args.quiet, labeller=args.labeller,
                                  observation_delay=args.observation_delay)
    print(f"dagger round {summary['round']}: {summary['episodes']} corrective episodes ({summary['frames']} frames) "
          f"added to {args.dataset}; " + (f"the model alone succeeded in {summary['learner_success']:.0%} of them"
          if args.beta == 0 else f"with the expert acting on {args.beta:.0%} of the ticks, "
                                 f"{summary['learner_success']:.0%} of them succeeded"))
    from il_robot.cli.json_file import write_json
    write_json(args.json, summary)
    return 0


def run_human_dagger(args) -> int:
    from il_robot.cli.json_file import write_json
    from il_robot.human_dagger import collect_human_corrections

    if args.beta != 0:
        raise ValueError("--beta mixes the scripted expert's actions in; with --labeller human the operator "
                         "decides when to act (leave --beta at 0)")
    summary = collect_human_corrections(args.dataset, args.model_dir, args.round, args.operator, args.num_tasks,
                                        args.bags, episode_duration=args.episode_duration)
    rate = summary["learner_success"]
    print(f"dagger round {summary['round']} ({args.operator} correcting): {summary['episodes']} episodes, taken over "
          f"in {summary['taken_over']} ({summary['takeover_frames']} frames); {summary['corrections_added']} "
          f"correction episodes added to {args.dataset}; the model alone succeeded in "
          + ("-" if rate is None else f"{rate:.0%}") + " of them")
    write_json(getattr(args, "json", None), summary)
    return 1 if summary["interrupted"] else 0
