"""`il-robot demo`, the README's first command: the shipped TecNet imitates the shipped demo of a
held-out task through the ROS graph, beside the scripted expert, and says what the outputs show."""

import json
import os
import subprocess
import sys

import pytest

from il_robot.cli import demo_cmd
from il_robot.paths import models_dir

pytestmark = pytest.mark.slow


def test_demo_runs_the_shipped_tecnet_on_its_demo_and_shows_it_beside_the_expert(tmp_path):
    import cv2

    from il_robot.video import read_video_frame_count

    proc = subprocess.run([sys.executable, "-m", "il_robot.cli.main", "demo", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    tecnet = json.loads((tmp_path / "tecnet.json").read_text())
    scripted = json.loads((tmp_path / "scripted.json").read_text())
    shipped = sorted((models_dir() / "tecnet" / "demos").glob("heldout-000_demo*"))
    for figures, policy in ((tecnet, "tecnet"), (scripted, "scripted")):
        assert figures["policy"] == policy and figures["mode"] == "lockstep" and figures["episodes"] == 1
        episode = figures["per_episode"][0]
        assert episode["task"] == "heldout/000"
        assert read_video_frame_count(episode["video"]) == episode["loop"]["frames"] == 200
    assert tecnet["per_episode"][0]["demos"] == [str(shipped[0])]   # conditioned on the shipped demo
    picture = cv2.imread(str(tmp_path / "rollout.png"))
    assert picture.shape == (3 * demo_cmd.TILE, demo_cmd.LABEL_WIDTH + demo_cmd.PICTURE_COLUMNS * demo_cmd.TILE, 3)
    assert picture[:, demo_cmd.LABEL_WIDTH:].std() > 10   # frames, not a blank
    out = proc.stdout
    assert "What you are looking at" in out and "held-out task" in out
    for episode in (tecnet["per_episode"][0], scripted["per_episode"][0]):
        assert f"{episode['final_distance'] * 100:.1f} cm from the goal" in out and episode["video"] in out
