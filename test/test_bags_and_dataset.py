"""Demo bags and the dataset: write -> check -> build -> load gives back what was recorded.

One real episode comes from the MuJoCo world driven by the scripted expert (the
in-process stack, no ROS); broken and edge-case bags are small synthetic ones.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from il_robot import topics
from il_robot.data import messages as msg
from il_robot.data.bag_check import check_bag, inspect_bag
from il_robot.data.bag_format import DEMO_TOPICS, OPERATOR, REQUIRED_TOPICS
from il_robot.data.bag_reader import BagError, load_episode, read_bag
from il_robot.data.bag_writer import EpisodeBagWriter
from il_robot.data.dataset import DatasetError, add_to_dataset, build_dataset, load_dataset

JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
JS, IMG, INFO, ACT = "sensor_msgs/msg/JointState", "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo", \
    "geometry_msgs/msg/TwistStamped"
STR, POSES, TRAJ = "std_msgs/msg/String", "geometry_msgs/msg/PoseArray", "trajectory_msgs/msg/JointTrajectory"
SIM_DURATION = 1.0


# -- a real episode from the sim ---------------------------------------------------------------------

def record_sim_episode(path: Path, storage: str = "mcap", seed: int = 5) -> dict:
    """Scripted expert in the MuJoCo world, recorded the way the ROS graph publishes it
    (joint states every physics step, camera/action/desired motion at control rate)."""
    from il_robot.policies.base import Observation
    from il_robot.policies.scripted import ScriptedPusher
    from il_robot.rollout import InProcessStack, privileged_objects
    from il_robot.sim.tasks import make_task
    from il_robot.sim.world import PushingWorld

    world = PushingWorld(make_task("train", 3))
    stack = InProcessStack(world)
    for _ in range(13):                       # the sim clock runs before the episode starts
        world.step(world.gravity_torque())
    info = world.reset(seed)
    info.update(episode_id=1, episode_duration=SIM_DURATION)
    policy = ScriptedPusher()
    policy.reset(info)
    stack.rr.reset()
    per_tick = round(stack.control_period / world.timestep)
    written = {"frame_stamp": [], "frame_step": [], "image": [], "action": [], "js_stamp": [], "q": [], "qd": []}
    with EpisodeBagWriter(path, storage) as bag:
        bag.write_msg(topics.EPISODE, STR, world.clock, msg.string(json.dumps(info)))
        bag.write_msg(OPERATOR, STR, world.clock, msg.string(json.dumps(
            {"operator": "sim:expert", "skill": "expert", "policy": "scripted"})))
        for k in range(int(round(SIM_DURATION / world.timestep))):
            now, q, qd = world.clock, world.q, world.qd
            bag.write_msg(topics.JOINT_STATES, JS, now, msg.joint_state(JOINTS, q, qd, world.applied_torque, now))
            written["js_stamp"].append(now), written["q"].append(q), written["qd"].append(qd)
            stack.controller.set_joint_state(world.joint_names, q, qd, now)
            if k % per_tick == 0:
                rgb = world.render()
                bag.write_msg(topics.IMAGE, IMG, now, msg.image(rgb, now))
                bag.write_msg(topics.CAMERA_INFO, INFO, now, msg.camera_info(64, 64, *world.camera_intrinsics(), now))
                objects = [world.object_pose("target"), world.object_pose("distractor"), [0.55, 0.0, 0.0]]
                bag.write_msg(topics.OBJECT_POSES, POSES, now, msg.pose_array(objects, now))
                tip, _ = stack.robot.tip_pose(q)
                v = np.asarray(policy.act(Observation(now, q, qd, tip, rgb, privileged_objects(world))), float)
                dm = stack.rr.step(q, v, now, stack.control_period)
                stack.controller.set_desired(world.joint_names, dm.positions, dm.velocities, dm.accelerations,
                                             now, now)
                bag.write_msg(topics.TIP_VELOCITY, ACT, now, msg.twist_stamped(v, now))
                bag.write_msg(topics.DESIRED_MOTION, TRAJ, now,
                              msg.desired_motion(JOINTS, dm.positions, dm.velocities, dm.accelerations, now))
                written["frame_stamp"].append(now), written["frame_step"].append(k)
                written["image"].append(rgb.copy()), written["action"].append(v)
            tau, _ = stack.controller.command(now)
            world.step(tau)
        out = world.outcome()
        bag.write_msg(topics.EPISODE_RESULT, STR, world.clock, msg.string(json.dumps(
            {"episode_id": 1, "task": world.task.name, "seed": seed, "success": out.success,
             "final_distance": out.final_distance, "duration": world.episode_time})))
    world.close()
    written.update(info=info, counts=dict(bag.counts), success=out.success)
    return {k: (np.array(v) if isinstance(v, list) else v) for k, v in written.items()}


@pytest.fixture(scope="module")
def sim_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("sim") / "demo_train003_s5"
    return path, record_sim_episode(path)


# -- small synthetic bags ---------------------------------------------------------------------------

def write_synthetic(path: Path, storage: str = "mcap", *, task_set: str = "train", index: int = 0,
                    start: float = 2.0, frames: int = 10, js_rate: float = 500.0, skip=(), action_frames=None,
                    joints=JOINTS, image_stamps=None, js_stamps=None, encoding=None, episode_json=None,
                    operator=None, result=True) -> dict:
    """A few frames of fake data at the nominal rates; knobs to break it in specific ways."""
    rng = np.random.default_rng(len(str(path)))
    image_stamps = start + 0.05 * np.arange(frames) if image_stamps is None else np.asarray(image_stamps)
    end = image_stamps[-1] + 0.01
    js_stamps = np.arange(start - 0.01, end, 1 / js_rate) if js_stamps is None else np.asarray(js_stamps)
    action_frames = range(frames) if action_frames is None else action_frames
    rgb = rng.integers(0, 256, (frames, 64, 64, 3), dtype=np.uint8)
    q = rng.normal(size=(len(js_stamps), 7))
    act = rng.normal(size=(frames, 3))
    info = {"task": {"name": f"{task_set}/{index:03d}", "task_set": task_set, "index": index,
                     "target": {"shape": "box"}, "distractor": {"shape": "cylinder"}},
            "seed": 7, "start_time": start, "target_xy": [0.5, 0.1], "distractor_xy": [0.4, -0.1],
            "goal_xy": [0.55, 0.0], "q0": [0.0] * 7, "episode_id": 3, "episode_duration": 0.5}
    with EpisodeBagWriter(path, storage) as bag:
        if topics.EPISODE not in skip:
            bag.write_msg(topics.EPISODE, STR, start, msg.string(episode_json or json.dumps(info)))
        if operator is not None:
            bag.write_msg(OPERATOR, STR, start, msg.string(json.dumps(operator)))
        if topics.JOINT_STATES not in skip:
            for t, qi in zip(js_stamps, q):
                bag.write_msg(topics.JOINT_STATES, JS, t, msg.joint_state(joints, qi, -qi, qi * 0, t))
        for i, t in enumerate(image_stamps):
            if topics.IMAGE not in skip:
                m = msg.image(rgb[i], t)
                if encoding:
                    m.encoding = encoding
                bag.write_msg(topics.IMAGE, IMG, max(image_stamps[: i + 1]), m)   # logged when received
            if topics.TIP_VELOCITY not in skip and i in action_frames:
                bag.write_msg(topics.TIP_VELOCITY, ACT, t, msg.twist_stamped(act[i], t))
        if result:
            bag.write_msg(topics.EPISODE_RESULT, STR, end, msg.string(json.dumps(
                {"episode_id": 3, "task": info["task"]["name"], "seed": 7, "success": index % 2 == 0,
                 "final_distance": 0.02, "duration": 0.5})))
    return {"image_stamps": image_stamps, "js_stamps": js_stamps, "rgb": rgb, "q": q, "action": act}


def problems_text(path) -> str:
    return "\n".join(str(p) for p in check_bag(path))


# -- the real episode: round trip ----------------------------------------------------------------

def test_sim_bag_round_trips_through_the_dataset(sim_bag, tmp_path):
    path, written = sim_bag
    assert inspect_bag(path).ok, problems_text(path)
    summary = build_dataset([path], tmp_path / "ds", progress=False)
    assert summary["episodes"] == 1 and summary["splits"]["train"]["episodes"] == 1
    assert summary["success_by_skill"]["expert"]["episodes"] == 1
    ds = load_dataset(tmp_path / "ds")
    assert ds.meta["format"] == "il_robot.dataset" and ds.meta["image_shape"] == [64, 64, 3]
    (meta, arrays), = list(ds.episodes("train"))
    assert list(ds.episodes("heldout")) == []
    n = len(written["frame_stamp"])
    assert meta["frames"] == n == SIM_DURATION * 20
    assert meta["operator"] == "sim:expert" and meta["skill"] == "expert" and meta["task_name"] == "train/003"
    assert meta["success"] == written["success"] and meta["seed"] == 5
    # Every frame had its action, stamped with it; the joint state published at the frame's stamp.
    assert np.array_equal(arrays["image"], written["image"])
    np.testing.assert_allclose(arrays["stamp"], written["frame_stamp"], atol=1e-9)
    np.testing.assert_allclose(arrays["t"], written["frame_stamp"] - written["info"]["start_time"], atol=1e-9)
    assert written["info"]["start_time"] > 0 and abs(arrays["t"][0]) < 1e-9
    frame_steps = written["frame_step"]       # the joint state published with each frame
    np.testing.assert_array_equal(arrays["q"], written["q"][frame_steps].astype(np.float32))
    np.testing.assert_array_equal(arrays["qd"], written["qd"][frame_steps].astype(np.float32))
    np.testing.assert_array_equal(arrays["action"], written["action"].astype(np.float32))
    assert arrays["image"].dtype == np.uint8 and arrays["q"].dtype == np.float32 and arrays["t"].dtype == np.float64
    assert np.abs(arrays["action"]).max() > 0.01     # the expert actually moved


def test_sim_bag_summary(sim_bag):
    path, written = sim_bag
    s = inspect_bag(path).summary
    assert s["counts"] == dict(sorted(written["counts"].items()))
    assert s["counts"][topics.JOINT_STATES] == 500 and s["frames"] == 20
    assert s["rates"][topics.JOINT_STATES] == pytest.approx(500, rel=1e-3)
    assert s["rates"][topics.IMAGE] == pytest.approx(20, rel=1e-3)
    assert s["duration"] == pytest.approx(SIM_DURATION)


def test_mcap_is_readable_by_the_mcap_library(sim_bag):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    path, written = sim_bag
    mcap_files = list(path.glob("*.mcap"))
    assert [f.name for f in mcap_files] == [f"{path.name}.mcap"]
    counts, first = {}, {}
    with open(mcap_files[0], "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        for schema, channel, message, decoded in reader.iter_decoded_messages():
            assert message.log_time >= 0 and channel.message_encoding == "cdr" and schema.encoding == "ros2msg"
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            first.setdefault(channel.topic, (schema.name, decoded))
    assert counts == written["counts"]
    name, js = first[topics.JOINT_STATES]
    assert name == "sensor_msgs/msg/JointState" and list(js.name) == JOINTS
    np.testing.assert_array_equal(js.position, written["q"][0])
    _, image = first[topics.IMAGE]
    assert (image.encoding, image.height, image.width) == ("rgb8", 64, 64)
    assert bytes(image.data) == written["image"][0].tobytes()
    _, twist = first[topics.TIP_VELOCITY]
    assert [twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z] == list(written["action"][0])
    assert twist.header.stamp.sec * 10**9 + twist.header.stamp.nanosec == msg.to_ns(written["frame_stamp"][0])


def test_bag_is_readable_by_rosbags_anyreader(sim_bag):
    from rosbags.highlevel import AnyReader

    path, written = sim_bag
    with AnyReader([path], default_typestore=msg.typestore()) as reader:
        assert {c.topic: c.msgcount for c in reader.connections} == written["counts"]
        assert all(c.msgdef.data for c in reader.connections)       # self-describing: definitions stored
        episode_conn, = [c for c in reader.connections if c.topic == topics.EPISODE]
        assert episode_conn.ext.offered_qos_profiles[0].durability.name == "TRANSIENT_LOCAL"   # latched on play
        conns = [c for c in reader.connections if c.topic == topics.IMAGE]
        stamps = []
        for conn, log_ns, raw in reader.messages(connections=conns):
            m = reader.deserialize(raw, conn.msgtype)
            stamps.append(msg.stamp_ns(m.header.stamp))
            assert log_ns == stamps[-1]               # log time = sim time, small numbers
    assert stamps == [msg.to_ns(t) for t in written["frame_stamp"]]


def test_sqlite3_bag_reads_back_and_builds(tmp_path):
    from rosbags.highlevel import AnyReader

    written = write_synthetic(tmp_path / "ep_sqlite", "sqlite3")
    assert [f.suffix for f in (tmp_path / "ep_sqlite").iterdir() if f.name != "metadata.yaml"] == [".db3"]
    with AnyReader([tmp_path / "ep_sqlite"], default_typestore=msg.typestore()) as reader:
        assert {c.topic for c in reader.connections} >= set(REQUIRED_TOPICS)
    ep = load_episode(tmp_path / "ep_sqlite")
    assert np.array_equal(ep.frames.image, written["rgb"])
    write_synthetic(tmp_path / "ep_mcap", "mcap", index=1)
    summary = build_dataset([tmp_path / "ep_sqlite", tmp_path / "ep_mcap"], tmp_path / "ds", progress=False)
    assert summary["episodes"] == 2 and summary["tasks"] == 2 and summary["frames"] == 20
    assert summary["success_by_skill"]["unknown"] == {"episodes": 2, "with_result": 2, "success_rate": 0.5}


# -- alignment rule -----------------------------------------------------------------------------------

def test_alignment_holds_missing_actions_and_drops_frames_before_the_first(tmp_path):
    # Joint states at 100 Hz, offset from the frames; actions missing for frames 0, 1 (dropped) and 5 (held).
    stamps = 2.0 + 0.05 * np.arange(8)
    js = np.arange(1.9963, 2.5, 0.01)
    w = write_synthetic(tmp_path / "ep", frames=8, image_stamps=stamps, js_stamps=js,
                        action_frames=[2, 3, 4, 6, 7])
    ep = load_episode(tmp_path / "ep")
    kept = [2, 3, 4, 5, 6, 7]
    assert ep.frames.dropped_frames == 2 and ep.frames.held_actions == 1
    assert np.array_equal(ep.frames.image, w["rgb"][kept])
    np.testing.assert_allclose(ep.frames.t, stamps[kept] - 2.0, atol=1e-9)
    np.testing.assert_array_equal(ep.frames.action, w["action"][[2, 3, 4, 4, 6, 7]])
    latest = [int(np.flatnonzero(js <= s + 1e-12)[-1]) for s in stamps[kept]]
    np.testing.assert_array_equal(ep.frames.q, w["q"][latest])
    np.testing.assert_array_equal(ep.frames.qd, -w["q"][latest])


def test_a_re_sent_frame_is_one_training_frame(tmp_path):
    # A lockstep simulator re-sends a frame it got no answer to: the bag holds it twice, the episode once.
    stamps = 2.0 + 0.05 * np.array([0, 1, 2, 2, 3, 4])
    w = write_synthetic(tmp_path / "ep", frames=6, image_stamps=stamps)
    ep = load_episode(tmp_path / "ep")
    np.testing.assert_allclose(ep.frames.t, 0.05 * np.arange(5), atol=1e-9)
    assert np.array_equal(ep.frames.image, w["rgb"][[0, 1, 2, 4, 5]]) and ep.frames.dropped_frames == 0
    assert check_bag(tmp_path / "ep") == []


def test_joint_order_is_matched_by_name(tmp_path):
    w = write_synthetic(tmp_path / "ep", joints=list(reversed(JOINTS)))
    ep = load_episode(tmp_path / "ep")
    latest = [int(np.flatnonzero(w["js_stamps"] <= s + 1e-12)[-1]) for s in w["image_stamps"]]
    np.testing.assert_array_equal(ep.frames.q, w["q"][latest][:, ::-1])


def test_stale_joint_states_are_an_error(tmp_path):
    write_synthetic(tmp_path / "ep", js_stamps=[1.99])       # one joint state, then nothing
    text = problems_text(tmp_path / "ep")
    assert "no joint state within 0.05 s" in text


# -- broken bags -----------------------------------------------------------------------------------------

def test_truncated_mcap_is_reported_and_fails_the_build(tmp_path, capsys):
    from il_robot.cli.main import main

    bag = tmp_path / "bags" / "ep_trunc"
    write_synthetic(bag)
    storage = bag / "ep_trunc.mcap"
    os.truncate(storage, storage.stat().st_size // 2)
    text = problems_text(bag)
    assert "truncated or corrupt" in text and "ep_trunc.mcap" in text
    with pytest.raises(BagError, match="truncated or corrupt"):
        read_bag(bag)
    out = tmp_path / "ds"
    with pytest.raises(DatasetError, match="truncated or corrupt"):
        build_dataset([bag], out, progress=False)
    assert not out.exists() and not (tmp_path / "ds.partial").exists()
    assert main(["dataset", "build", str(tmp_path / "bags"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "ep_trunc" in err and "truncated or corrupt" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bags"]


def test_missing_required_topic_is_named(tmp_path):
    write_synthetic(tmp_path / "ep", skip=(topics.TIP_VELOCITY,))
    assert problems_text(tmp_path / "ep") == \
        "missing required topic /tip_velocity_command (geometry_msgs/msg/TwistStamped)"
    with pytest.raises(DatasetError, match="/tip_velocity_command"):
        build_dataset([tmp_path / "ep"], tmp_path / "ds", progress=False)


def test_out_of_order_stamps_and_gaps_are_reported(tmp_path):
    stamps = 2.0 + 0.05 * np.arange(10)
    stamps[[4, 5]] = stamps[[5, 4]]
    write_synthetic(tmp_path / "order", image_stamps=stamps)
    assert "/camera/image_raw: header stamps out of order 1 time(s); first at message 5: t=2.200 s after " \
           "t=2.250 s" in problems_text(tmp_path / "order")
    gap = np.concatenate([2.0 + 0.05 * np.arange(5), 2.6 + 0.05 * np.arange(5)])
    js = np.concatenate([np.arange(1.99, 2.3, 0.002), np.arange(2.55, 2.82, 0.002)])
    write_synthetic(tmp_path / "gap", image_stamps=gap, js_stamps=js)
    text = problems_text(tmp_path / "gap")
    assert "/camera/image_raw: 1 gap(s) longer than 3x the median period (50.0 ms); largest 0.400 s after " \
           "t=2.200 s" in text
    assert "/joint_states: 1 gap(s) longer than 10x" in text and "after t=2.298 s" in text


def test_bad_content_is_reported(tmp_path):
    write_synthetic(tmp_path / "enc", encoding="bgr8")
    assert "image encoding 'bgr8' (need rgb8)" in problems_text(tmp_path / "enc")
    write_synthetic(tmp_path / "json", episode_json="{not json")
    assert "/sim/episode message 0 is not JSON" in problems_text(tmp_path / "json")
    write_synthetic(tmp_path / "keys", episode_json=json.dumps({"seed": 1}))
    assert "/sim/episode JSON lacks task, start_time" in problems_text(tmp_path / "keys")
    write_synthetic(tmp_path / "joint", joints=JOINTS[:6] + ["elbow"])
    text = problems_text(tmp_path / "joint")
    assert "unknown joint(s) ['elbow']" in text and "/joint_states message 0" in text
    write_synthetic(tmp_path / "skill", operator={"operator": "human:keyboard", "skill": "great"})
    assert "skill 'great' is not one of" in problems_text(tmp_path / "skill")
    (tmp_path / "notabag").mkdir()
    assert "metadata.yaml missing" in problems_text(tmp_path / "notabag")
    write_synthetic(tmp_path / "nometa")
    (tmp_path / "nometa" / "metadata.yaml").unlink()
    assert "metadata.yaml missing" in problems_text(tmp_path / "nometa")
    write_synthetic(tmp_path / "nofile")
    (tmp_path / "nofile" / "nofile.mcap").unlink()
    assert problems_text(tmp_path / "nofile") == "storage file missing: nofile.mcap"


def test_skip_bad_builds_the_rest(tmp_path):
    write_synthetic(tmp_path / "bags" / "a", task_set="train", index=0,
                    operator={"operator": "human:keyboard", "skill": "okay", "notes": "first try"})
    write_synthetic(tmp_path / "bags" / "b", task_set="heldout", index=4)
    write_synthetic(tmp_path / "bags" / "c_bad", skip=(topics.EPISODE,))
    summary = build_dataset([tmp_path / "bags" / n for n in ("a", "b", "c_bad")], tmp_path / "ds",
                            skip_bad=True, progress=False)
    assert summary["episodes"] == 2
    assert summary["splits"]["train"]["episodes"] == 1 and summary["splits"]["heldout"]["episodes"] == 1
    assert summary["skipped"] == [{"bag": str(tmp_path / "bags" / "c_bad"),
                                   "problems": ["missing required topic /sim/episode (std_msgs/msg/String)"]}]
    assert summary["success_by_skill"]["okay"]["success_rate"] == 1.0
    ds = load_dataset(tmp_path / "ds")
    assert sorted((tmp_path / "ds").rglob("*.npz")) == [tmp_path / "ds" / "heldout" / "b.npz",
                                                        tmp_path / "ds" / "train" / "a.npz"]
    assert [m["key"] for m in ds.episode_meta()] == ["a", "b"]


def test_existing_output_is_kept_unless_forced(tmp_path):
    write_synthetic(tmp_path / "a")
    build_dataset([tmp_path / "a"], tmp_path / "ds", progress=False)
    created = load_dataset(tmp_path / "ds").meta["created"]
    with pytest.raises(DatasetError, match="exists already"):
        build_dataset([tmp_path / "a"], tmp_path / "ds", progress=False)
    write_synthetic(tmp_path / "broken", skip=(topics.IMAGE,))
    with pytest.raises(DatasetError, match="no messages|missing required topic"):
        build_dataset([tmp_path / "a", tmp_path / "broken"], tmp_path / "ds", force=True, progress=False)
    assert load_dataset(tmp_path / "ds").meta["created"] == created        # the old one is untouched
    build_dataset([tmp_path / "a"], tmp_path / "ds", force=True, progress=False)
    assert load_dataset(tmp_path / "ds").meta["created"] != created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "broken", "ds"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "precious.txt").write_text("x")
    with pytest.raises(DatasetError, match="not a dataset"):
        build_dataset([tmp_path / "a"], tmp_path / "other", force=True, progress=False)


def test_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
    import il_robot.data.dataset as dataset

    write_synthetic(tmp_path / "a")
    write_synthetic(tmp_path / "b")
    calls = []
    write = dataset._write_episode

    def interrupted(*args):
        """Ctrl-C after the first episode is written (bags are read in worker processes; writing is here)."""
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return write(*args)

    monkeypatch.setattr(dataset, "_write_episode", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_dataset([tmp_path / "a", tmp_path / "b"], tmp_path / "ds", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_add_keeps_the_dataset_and_its_dagger_episodes_and_adds_only_new_bags(tmp_path):
    """More demos later (new train tasks) must not cost the DAgger rounds already in the dataset."""
    write_synthetic(tmp_path / "bags" / "a", index=0)
    build_dataset([tmp_path / "bags" / "a"], tmp_path / "ds", progress=False)
    meta_path = tmp_path / "ds" / "dataset.json"
    meta = json.loads(meta_path.read_text())
    correction = {**meta["episodes"][0], "key": "correction-r1-000", "file": "train/correction-r1-000.npz",
                  "bag": None, "skill": "correction", "dagger": {"round": 1}}
    shutil.copy(tmp_path / "ds" / "train" / "a.npz", tmp_path / "ds" / correction["file"])
    meta["episodes"].append(correction)
    meta_path.write_text(json.dumps(meta))
    write_synthetic(tmp_path / "bags" / "b", index=1)
    write_synthetic(tmp_path / "bags" / "c_bad", skip=(topics.EPISODE,))
    with pytest.raises(DatasetError, match="missing required topic"):
        add_to_dataset([tmp_path / "bags" / n for n in ("b", "c_bad")], tmp_path / "ds", progress=False)
    assert json.loads(meta_path.read_text()) == meta and not (tmp_path / "ds" / "train" / "b.npz").exists()
    summary = add_to_dataset([tmp_path / "bags" / n for n in ("a", "b", "c_bad")], tmp_path / "ds",
                             skip_bad=True, progress=False)
    assert summary["added"] == 1 and summary["already_in"] == 1 and summary["episodes"] == 2
    assert [s["bag"] for s in summary["skipped"]] == [str(tmp_path / "bags" / "c_bad")]
    ds = load_dataset(tmp_path / "ds")
    assert [m["key"] for m in ds.episode_meta()] == ["a", "correction-r1-000", "b"]
    assert np.load(tmp_path / "ds" / "train" / "b.npz")["action"].shape == (10, 3)
    with pytest.raises(DatasetError, match="not a dataset"):
        add_to_dataset([tmp_path / "bags" / "b"], tmp_path / "bags", progress=False)


# -- the writer ----------------------------------------------------------------------------------------

def test_writer_refuses_to_overwrite_and_leaves_nothing_on_error(tmp_path):
    write_synthetic(tmp_path / "ep")
    with pytest.raises(FileExistsError, match="not overwriting"):
        EpisodeBagWriter(tmp_path / "ep")
    with pytest.raises(RuntimeError, match="boom"):
        with EpisodeBagWriter(tmp_path / "crash") as bag:
            bag.write_msg(topics.EPISODE, STR, 0.0, msg.string("{}"))
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ep"]
    with EpisodeBagWriter(tmp_path / "raw") as bag:
        with pytest.raises(ValueError, match="recorded as"):
            bag.write(topics.EPISODE, STR, 0, msg.serialize(msg.string("{}"), STR))
            bag.write(topics.EPISODE, JS, 1, b"\x00\x01\x00\x00")
        with pytest.raises(ValueError, match="unknown message type"):
            bag.write("/x", "my_msgs/msg/Custom", 0, b"\x00\x01\x00\x00")
        assert (tmp_path / "raw.partial").is_dir() and not (tmp_path / "raw").exists()
    assert bag.counts == {topics.EPISODE: 1}
    assert (tmp_path / "raw" / "metadata.yaml").is_file() and not (tmp_path / "raw.partial").exists()


def test_topic_table_uses_the_shared_names():
    by_topic = {s.topic: s for s in DEMO_TOPICS}
    assert set(REQUIRED_TOPICS) == {topics.JOINT_STATES, topics.IMAGE, topics.TIP_VELOCITY, topics.EPISODE}
    assert by_topic[topics.TIP_VELOCITY].msgtype == "geometry_msgs/msg/TwistStamped"
    assert all(s.msgtype in msg.typestore().types for s in DEMO_TOPICS)


def test_data_package_imports_neither_rclpy_nor_torch():
    code = ("import sys, il_robot.data.dataset, il_robot.data.bag_writer, il_robot.cli.dataset_cmd; "
            "bad = [m for m in ('rclpy', 'torch') if m in sys.modules]; sys.exit(str(bad) if bad else 0)")
    subprocess.run([sys.executable, "-c", code], check=True)


# -- the CLI --------------------------------------------------------------------------------------------

def test_cli_check_and_build(tmp_path, capsys):
    from il_robot.cli.main import main

    write_synthetic(tmp_path / "bags" / "good")
    write_synthetic(tmp_path / "bags" / "nested" / "good2", task_set="val", index=2)
    assert main(["dataset", "check", str(tmp_path / "bags")]) == 0
    out = capsys.readouterr().out
    assert f"OK {tmp_path / 'bags' / 'good'}: 10 frames, 0.5 s" in out and "2 of 2 bags OK" in out

    shutil.copytree(tmp_path / "bags" / "good", tmp_path / "bags" / "zz_trunc")
    (tmp_path / "bags" / "zz_trunc" / "good.mcap").write_bytes(b"\x89MCAP0\r\n")
    assert main(["dataset", "check", str(tmp_path / "bags"), str(tmp_path / "nowhere")]) == 1
    out = capsys.readouterr().out
    assert f"BAD {tmp_path / 'bags' / 'zz_trunc'}:\n  - truncated or corrupt" in out
    assert f"BAD {tmp_path / 'nowhere'}:\n  - no such bag directory" in out

    summary_file = tmp_path / "summary.json"
    rc = main(["dataset", "build", str(tmp_path / "bags"), "--out", str(tmp_path / "ds"), "--skip-bad",
               "--json", str(summary_file), "--quiet"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "2 episodes, 2 tasks, 20 frames" in out and "skipped" in out
    assert json.loads(summary_file.read_text())["splits"]["val"]["episodes"] == 1
    assert main(["dataset", "build", str(tmp_path / "bags" / "good"), "--out", str(tmp_path / "ds")]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["dataset", "add", str(tmp_path / "ds"), str(tmp_path / "bags"), "--skip-bad", "--quiet"]) == 0
    assert "added 0 bag(s); 2 were in the dataset already" in capsys.readouterr().out


def test_cli_entry_point_exit_status(tmp_path):
    write_synthetic(tmp_path / "ep", skip=(topics.JOINT_STATES,))
    exe = Path(sys.executable).with_name("il-robot")
    proc = subprocess.run([str(exe), "dataset", "check", str(tmp_path / "ep")], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "missing required topic /joint_states" in proc.stdout and "Traceback" not in proc.stderr


def test_compacted_demo_keeps_what_conditioning_needs(tmp_path):
    """A shipped demo: fewer joint states, same frames, still a valid demo bag."""
    from il_robot.data.bag_reader import load_episode
    from il_robot.data.compact import compact_demo

    full = tmp_path / "full"
    record_sim_episode(full)
    small = compact_demo(full, tmp_path / "small")
    assert check_bag(small) == []
    a, b = load_episode(full).frames, load_episode(small).frames
    assert np.array_equal(a.image, b.image) and np.allclose(a.action, b.action) and np.allclose(a.q, b.q)
    assert sum(f.stat().st_size for f in small.rglob("*")) < sum(f.stat().st_size for f in full.rglob("*"))
