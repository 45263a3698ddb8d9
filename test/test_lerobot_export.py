"""`il-robot dataset export --format lerobot`: demos recorded by the package's own recorder (MuJoCo world,
simulated operators) go out as a LeRobotDataset v3, and LeRobot's own loader (lerobot 0.4.4, in the venv
scripts/lerobot_check_venv.sh builds) reads back what the bags hold: frame counts, shapes, states,
actions, video frames, task strings, per-episode skill and success.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from il_robot.cli.main import main
from il_robot.data.bag_reader import load_episode
from il_robot.data.lerobot_format import ACTION_NAMES, FPS, STATE_NAMES
from il_robot.sim.task_description import colour_name, describe_task

REPO = Path(__file__).resolve().parents[1]
READ_BACK = REPO / "test" / "lerobot_read_back.py"
EPISODE_SECONDS = 1.5       # 30 frames each: short, but the arm moves
VENV_BUILD_TIMEOUT = 1800   # s: a fresh build downloads lerobot's loader dependencies (about 2 min here)


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> list[Path]:
    """Three demos of two train tasks, an expert's and a poor operator's, as `il-robot record` writes them."""
    from il_robot.data.generate import plan_jobs, record_demo

    root = tmp_path_factory.mktemp("demos")
    jobs = plan_jobs(str(root), "train", num_tasks=2, demos_per_task=2, skills=["expert", "poor"],
                     duration=EPISODE_SECONDS)[:3]
    for job in jobs:
        record_demo(job)
    return [Path(j.path) for j in jobs]


@pytest.fixture(scope="module")
def export(bags, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "lerobot"
    assert main(["dataset", "export", "--format", "lerobot", str(bags[0].parent), "--out", str(out), "--quiet"]) == 0
    return out


def test_task_in_words():
    from il_robot.sim.tasks import make_task

    assert [colour_name(c) for c in ((1, 0, 0, 1), (1, 0.5, 0, 1), (0, 0.8, 0, 1), (0, 0, 1, 1), (1, 0, 1, 1),
                                     (0.9, 0, 0.1, 1))] == ["red", "orange", "green", "blue", "magenta", "red"]
    task = make_task("train", 1).to_dict()
    assert describe_task(task) == f"push the {colour_name(task['target']['rgba'])} {task['target']['shape']} to the goal"
    assert re.fullmatch(r"push the [a-z]+ (box|cylinder) to the goal", describe_task(make_task("heldout", 7).to_dict()))


def test_layout_is_lerobot_v3(export, bags):
    """The files and the info.json LeRobot's v3 reader looks for, without LeRobot."""
    import pyarrow.parquet as pq

    info = json.loads((export / "meta" / "info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == FPS == 20
    assert info["total_episodes"] == 3 and info["total_tasks"] == 2
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    camera = info["features"]["observation.images.front"]
    assert camera["dtype"] == "video" and camera["shape"] == [64, 64, 3] and camera["info"]["video.fps"] == FPS
    assert info["features"]["observation.state"]["names"] == STATE_NAMES
    for f in ("data/chunk-000/file-000.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/tasks.parquet",
              "meta/stats.json", "videos/observation.images.front/chunk-000/file-000.mp4"):
        assert (export / f).is_file(), f
    episodes = pq.read_table(export / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    frames = [len(load_episode(b).frames.t) for b in bags]
    assert [e["length"] for e in episodes] == frames
    assert [(e["dataset_from_index"], e["dataset_to_index"]) for e in episodes] == \
        [(sum(frames[:i]), sum(frames[:i + 1])) for i in range(3)]
    # one video for all episodes: each spans [from, to) seconds of it, back to back
    spans = [(e["videos/observation.images.front/from_timestamp"], e["videos/observation.images.front/to_timestamp"])
             for e in episodes]
    assert spans == [(sum(frames[:i]) / FPS, sum(frames[:i + 1]) / FPS) for i in range(3)]
    stats = json.loads((export / "meta" / "stats.json").read_text())
    assert np.asarray(stats["observation.images.front"]["mean"]).shape == (3, 1, 1)
    assert stats["action"]["count"] == [sum(frames)]


def test_export_of_a_built_dataset_matches_the_bags(bags, export, tmp_path):
    import pyarrow.parquet as pq

    assert main(["dataset", "build", str(bags[0].parent), "--out", str(tmp_path / "ds"), "--quiet"]) == 0
    assert main(["dataset", "export", "--format", "lerobot", str(tmp_path / "ds"), "--out", str(tmp_path / "lr"),
                 "--quiet", "--vcodec", "h264"]) == 0
    from_bags = pq.read_table(export / "data/chunk-000/file-000.parquet").to_pydict()
    from_ds = pq.read_table(tmp_path / "lr/data/chunk-000/file-000.parquet").to_pydict()
    assert from_ds.keys() == from_bags.keys()
    for key in from_bags:   # the dataset keeps q in float32, so the tip (forward kinematics) differs by rounding
        np.testing.assert_allclose(np.asarray(from_ds[key], float), np.asarray(from_bags[key], float), atol=1e-5)
    meta = [pq.read_table(d / "meta/episodes/chunk-000/file-000.parquet").select(
        ["tasks", "task_name", "skill", "success", "operator"]).to_pylist() for d in (export, tmp_path / "lr")]
    assert meta[0] == meta[1]


def test_export_errors_are_clean(bags, export, tmp_path, capsys):
    assert main(["dataset", "export", "--format", "lerobot", str(bags[0]), "--out", str(export)]) == 2
    assert "exists already; use --force" in capsys.readouterr().err
    broken = tmp_path / "bags" / "broken"
    broken.mkdir(parents=True)
    (broken / "metadata.yaml").write_text("not: a bag\n")
    out = tmp_path / "out"
    assert main(["dataset", "export", "--format", "lerobot", str(tmp_path / "bags"), str(bags[0]),
                 "--out", str(out), "--quiet"]) == 2
    assert f"bad bag {broken}" in capsys.readouterr().err
    assert not out.exists() and not out.with_name("out.partial").exists()
    assert main(["dataset", "export", "--format", "lerobot", str(tmp_path / "bags"), str(bags[0]),
                 "--out", str(out), "--quiet", "--skip-bad"]) == 0
    assert f"skipped {broken}" in capsys.readouterr().out
    assert json.loads((out / "meta" / "info.json").read_text())["total_episodes"] == 1


# -- LeRobot's own loader ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lerobot_python() -> str:
    """The LeRobot venv's python; built on first use. No network, no venv: the test fails and says why."""
    build = subprocess.run(["bash", str(REPO / "scripts" / "lerobot_check_venv.sh")], cwd=REPO, capture_output=True,
                           text=True, timeout=VENV_BUILD_TIMEOUT)
    if build.returncode != 0:
        pytest.fail("could not build the LeRobot check venv (scripts/lerobot_check_venv.sh needs PyPI and Debian's "
                    f"FFmpeg libraries), exit {build.returncode}:\n{build.stderr[-3000:]}", pytrace=False)
    return str(REPO / build.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_lerobot_reads_back_what_the_bags_hold(bags, export, lerobot_python, tmp_path):
    from il_robot.robot.model import RobotModel

    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    run = subprocess.run([lerobot_python, str(READ_BACK), str(export), str(tmp_path / "read.npz")], env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    got = np.load(tmp_path / "read.npz")
    summary = json.loads(str(got["summary"]))
    episodes = [load_episode(b) for b in bags]
    lengths = [len(e.frames.t) for e in episodes]
    assert summary["lerobot"] == "0.4.4" and summary["video_backend"] == "torchcodec"
    assert summary["len"] == sum(lengths) == len(got["state"]) and summary["num_episodes"] == 3
    assert summary["episode_lengths"] == lengths and summary["fps"] == FPS
    assert summary["shapes"]["observation.state"] == [17] and summary["shapes"]["action"] == [3]
    assert summary["names"]["observation.state"] == STATE_NAMES and summary["names"]["action"] == ACTION_NAMES
    assert summary["image_item_shape"] == [3, 64, 64] and summary["image_item_dtype"] == "torch.float32"

    robot = RobotModel.load()
    start = 0
    for i, (ep, bag) in enumerate(zip(episodes, bags)):
        f, rows = ep.frames, slice(start, start + len(ep.frames.t))
        start = rows.stop
        state = got["state"][rows]
        np.testing.assert_allclose(state[:, :7], f.q, atol=1e-6)
        np.testing.assert_allclose(state[:, 7:14], f.qd, atol=1e-5)
        np.testing.assert_allclose(state[:, 14:], [robot.tip_pose(q)[0] for q in f.q], atol=1e-6)
        np.testing.assert_allclose(got["action"][rows], f.action, atol=1e-6)
        assert (got["episode_index"][rows] == i).all()
        np.testing.assert_array_equal(got["frame_index"][rows], np.arange(len(f.t)))
        np.testing.assert_array_equal(got["timestamp"][rows], (np.arange(len(f.t)) / FPS).astype(np.float32))
        assert set(summary["tasks"][rows]) == {describe_task(ep.info["task"])}
        # video frames: lossy (AV1) but close, and each the bag's own frame, not a neighbour's
        video = got["image"][rows].transpose(0, 2, 3, 1)
        source = f.image / 255.0
        error = np.abs(video - source).mean(axis=(1, 2, 3))
        assert error.max() < 0.03, error
        assert np.abs(video[-1] - source[-1]).mean() < np.abs(video[-1] - source[0]).mean()
        if i:
            previous_last = episodes[i - 1].frames.image[-1] / 255.0
            assert np.abs(video[0] - source[0]).mean() < np.abs(video[0] - previous_last).mean()
        meta, result = summary["episodes"][i], ep.result
        assert meta == {"task_name": ep.info["task"]["name"], "split": "train", "operator": ep.operator["operator"],
                        "skill": ep.operator["skill"], "success": result["success"],
                        "final_distance": pytest.approx(result["final_distance"]), "source": str(bag)}
    assert [m["skill"] for m in summary["episodes"]] == ["expert", "poor", "expert"]
