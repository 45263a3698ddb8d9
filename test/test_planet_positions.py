"""PlaNet with a position latent: camera projection, locator, push dynamics, training -> export -> runtime.

Tiny networks and 1-second episodes (real MuJoCo, real onnxruntime), so the file stays well under a
minute or two on a busy laptop; the measured figures come from docs/planet.md's commands.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from il_robot.policies.base import PolicyConfig
from il_robot.policies.catalog import make_policy

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (training extras)")

TINY = ["model.locator_channels=4", "model.task_size=4", "model.hidden_size=8", "data.action_repeat=2",
        "planner.horizon=3", "planner.candidates=16", "planner.top_k=4", "planner.iterations=2",
        "collect.train_tasks=2", "collect.val_tasks=1", "collect.seed_episodes_per_task=2",
        "collect.episode_duration=1.0", "collect.seed_sources=[expert,random]", "collect.workers=1",
        "collect.every=3", "train.locator_steps=3", "train.locator_batch=4", "train.tip_steps=3",
        "train.tip_batch=16", "train.dynamics_steps=6", "train.dynamics_batch=32", "train.log_every=2",
        "train.val_frames=8", "train.open_loop_horizon=3", "train.eval_episodes=1", "train.threads=1",
        "export.horizons=[12]"]


def test_camera_pixels_land_on_the_target_in_the_rendered_frame():
    """The pinhole model of the scene's camera against MuJoCo's own rendering."""
    from il_robot.sim.scene import camera_pixels
    from il_robot.sim.tasks import make_task
    from il_robot.sim.world import PushingWorld

    for index in range(3):
        world = PushingWorld(make_task("train", index))
        world.reset(index)
        frame = world.render().astype(float)
        u, v = camera_pixels(world.object_pose("target")[:3], 64, 64)
        colour = np.asarray(world.task.target.rgba[:3]) * 255
        seen = frame[int(v), int(u)]
        # The object's colour, lit: the same hue direction, unlike the table's brown.
        cos = seen @ colour / (np.linalg.norm(seen) * np.linalg.norm(colour))
        assert cos > 0.95, (index, seen, colour)
        world.close()


@pytest.fixture(scope="module")
def episodes_dir(tmp_path_factory) -> Path:
    from il_robot.learning.planet.data import CollectConfig, collect_seed

    root = tmp_path_factory.mktemp("positions_data") / "episodes"
    cfg = CollectConfig(train_tasks=2, val_tasks=1, seed_episodes_per_task=2, seed_sources=["expert", "random"],
                        episode_duration=1.0)
    assert collect_seed(root, cfg, action_bound=0.2, progress=False)["collected"] == 5
    return root


@needs_torch
def test_transitions_pair_each_frame_with_the_next_model_step(episodes_dir):
    from il_robot.learning.planet import data
    from il_robot.learning.planet.positions_train import transitions

    e = data.load_episode(sorted(episodes_dir.glob("train-000_expert_*.npz"))[0])
    rows = transitions([e], repeat=2, bound=0.2)
    t = np.arange(2, e.length - 2)
    assert rows.shape == (2 * len(t), 18)                   # target rows, then distractor rows
    np.testing.assert_allclose(rows[:len(t), 0:3], e.arrays["tip"][t], atol=1e-6)
    np.testing.assert_allclose(rows[:len(t), 12:15], e.arrays["tip"][t + 2], atol=1e-6)
    np.testing.assert_allclose(rows[len(t):, 15:18], e.arrays["distractor"][t + 2], atol=1e-6)
    # The command of a step is the mean of the clipped commands of its ticks, in bounds.
    want = np.clip(e.arrays["action"], -0.2, 0.2)[t[0]:t[0] + 2].mean(0) / 0.2
    np.testing.assert_allclose(rows[0, 6:9], want, atol=1e-6)
    assert np.all(np.abs(rows[:, 6:12]) <= 1 + 1e-6)


@needs_torch
@pytest.mark.parametrize("behind", [0.0, 0.05])
def test_graph_reward_is_the_numpy_reward_with_its_reach_point_and_radius(behind):
    import torch

    from il_robot.learning.planet.positions import PositionModelConfig, PositionWorldModel
    from il_robot.learning.planet.reward import RewardConfig, reach_point, reward
    from il_robot.sim.tasks import GOAL_XY

    cfg = RewardConfig(goal_weight=1.0, reach_weight=0.5, reach_radius=0.02, reach_behind=behind)
    model = PositionWorldModel(PositionModelConfig(locator_channels=4, task_size=4, hidden_size=8), reward=cfg)
    rng = np.random.default_rng(0)
    tip, target = rng.uniform(0.3, 0.7, (50, 3)), rng.uniform(0.3, 0.7, (50, 3))
    tip[:10] = reach_point(target[:10], cfg) + 0.01            # inside the radius: no reach cost
    got = model.reward(torch.as_tensor(tip, dtype=torch.float32), torch.as_tensor(target, dtype=torch.float32))
    np.testing.assert_allclose(got.numpy(), reward(tip, target, cfg), atol=1e-5)
    np.testing.assert_allclose(reward(tip[:10], target[:10], cfg), reward(tip[:10], target[:10],
                                                                          RewardConfig(reach_weight=0.0)))
    if behind:      # the point is behind the target, seen from the goal, at the pushing height
        point = reach_point(target, cfg)
        to_goal = np.asarray(GOAL_XY) - target[:, :2]
        np.testing.assert_allclose(np.linalg.norm(point[:, :2] - target[:, :2], axis=1), behind, atol=1e-9)
        assert np.all(((point[:, :2] - target[:, :2]) * to_goal).sum(1) < 0)       # away from the goal
        assert np.all(point[:, 2] == cfg.push_height)


@needs_torch
def test_attention_target_peaks_on_the_projected_pixel():
    from il_robot.learning.planet.positions_train import attention_target
    from il_robot.sim.scene import camera_pixels

    points = np.array([[0.4, -0.2, 0.03], [0.55, 0.0, 0.03], [0.65, 0.2, 0.03]])
    blob = attention_target(points, sigma=1.0).numpy()
    np.testing.assert_allclose(blob.sum((1, 2)), 1.0, atol=1e-5)
    for b, (u, v) in zip(blob, camera_pixels(points, 64, 64) / 2):
        row, col = np.unravel_index(b.argmax(), b.shape)
        assert abs(col + 0.5 - u) <= 0.5 + 1e-6 and abs(row + 0.5 - v) <= 0.5 + 1e-6


def map_coordinate_locator(loc):
    """`loc` with its "positions" the map coordinates themselves (z 0), so a map's centre reads directly."""
    import torch

    class MapCoordinates(torch.nn.Module):
        def forward(self, uv):
            return torch.nn.functional.pad(uv, (0, 1))

    with torch.no_grad():
        loc.to_position = MapCoordinates()
        loc.position_mean.zero_()
        loc.position_std.fill_(1.0)
    return loc


def bump(u, v, height):
    """A Gaussian bump of logits (MAP, MAP) of this height at cell (u, v)."""
    import torch

    from il_robot.learning.planet.positions import MAP

    cells = torch.arange(MAP, dtype=torch.float32) + 0.5
    return height * torch.exp(-((cells[None, :] - u) ** 2 + (cells[:, None] - v) ** 2) / 2.0)


@needs_torch
def test_locator_takes_the_stronger_mode_and_tracks_the_previous_cell():
    """Two look-alike objects on the map: the centre of one of them, never the point between; with a
    previous cell, the one near it even when the other looks a little more alike."""
    import torch

    from il_robot.learning.planet.positions import MAP, PositionModelConfig, TargetLocator

    loc = map_coordinate_locator(TargetLocator(PositionModelConfig(locator_channels=4, task_size=4)))
    logits = (bump(6.5, 8.5, 6.0) + bump(24.5, 20.5, 6.5))[None]       # B is a little stronger
    uv_of = lambda cell: (cell - MAP / 2) / (MAP / 2 - 0.5)             # noqa: E731  cell -> [-1, 1]
    position, cell = loc.locate(logits)
    np.testing.assert_allclose(cell[0].numpy(), [24.5, 20.5], atol=0.3)
    np.testing.assert_allclose(position[0, :2].numpy(), uv_of(np.array([24.5, 20.5])), atol=0.03)
    prior = torch.tensor([[7.0, 9.0]])                                  # last frame found A
    _, cell = loc.locate(loc.track(logits, prior, sigma=4.0))
    np.testing.assert_allclose(cell[0].numpy(), [6.5, 8.5], atol=0.3)
    _, cell = loc.locate(loc.track(logits, torch.zeros(1, 2), sigma=4.0))   # no previous frame: untouched
    np.testing.assert_allclose(cell[0].numpy(), [24.5, 20.5], atol=0.3)


@needs_torch
def test_locator_training_charges_attention_on_a_second_object():
    """The planner reads the windowed centre of the strongest mode, which a weaker second mode does not
    move; training must still make the map give that mode up, or the locator keeps one on the distractor
    and follows it when it grows (a recipe's locator did: planner runs 17 % instead of 83 %)."""
    import torch

    from il_robot.learning.planet.positions import PositionModelConfig, PositionWorldModel
    from il_robot.learning.planet.positions_config import PositionTrainConfig
    from il_robot.learning.planet.positions_train import locator_loss

    model = PositionWorldModel(PositionModelConfig(locator_channels=4, task_size=4, hidden_size=8))
    loc = map_coordinate_locator(model.locator)
    one = bump(8.5, 10.5, 14.0)[None]
    two = one + bump(24.5, 20.5, 12.0)[None]                  # a weaker look-alike elsewhere
    with torch.no_grad():
        target = loc.position(one)
        np.testing.assert_allclose(loc.position(two).numpy(), target.numpy(), atol=1e-3)  # the planner: the same
    batch = {"image": np.zeros((1, 64, 64, 3), np.uint8), "task_frame": np.zeros((1, 64, 64, 3), np.uint8),
             "position": np.concatenate([np.zeros((1, 3)), target.numpy(), np.zeros((1, 3))], 1).astype(np.float32)}
    cfg = PositionTrainConfig(attention_weight=0.0)
    losses = {}
    for name, logits in (("one", one), ("two", two)):
        loc.logits = lambda image, task, logits=logits: logits  # noqa: E731  the map under test, not a network's
        losses[name] = float(locator_loss(model, batch, cfg)[0])
    assert losses["two"] > 10 * losses["one"] and losses["two"] > 0.005, losses


@needs_torch
def test_locator_and_dynamics_losses_fall_on_real_episodes(episodes_dir):
    import torch

    from il_robot.learning.planet import data
    from il_robot.learning.planet.positions import PositionModelConfig, PositionWorldModel
    from il_robot.learning.planet.positions_config import PositionTrainConfig
    from il_robot.learning.planet.positions_train import dynamics_loss, locator_loss, transitions
    from il_robot.learning.planet.reward import RewardConfig

    torch.manual_seed(0)
    eps = data.split(data.load_episodes(episodes_dir), "train")
    model = PositionWorldModel(PositionModelConfig(locator_channels=8, task_size=8, hidden_size=32))
    sampler = data.SequenceSampler(eps, 2, 1, 0.2, RewardConfig(), np.random.default_rng(0))
    batch = sampler.sample_frames(16)
    cfg = PositionTrainConfig()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):                                     # one batch, learned by heart: the losses must fall
        loss, _ = locator_loss(model, batch, cfg)
        first = first if first is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.7 * first
    rows = torch.as_tensor(transitions(eps, 2, 0.2))
    before = dynamics_loss(model, rows)[0].item()
    for _ in range(60):
        loss, _ = dynamics_loss(model, rows)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert dynamics_loss(model, rows)[0].item() < 0.5 * before


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, episodes_dir):
    from il_robot.cli.main import main

    if not HAS_TORCH:
        pytest.skip("torch not installed (training extras)")
    root = tmp_path_factory.mktemp("positions_run")
    data_dir = root / "data"
    data_dir.mkdir()
    for f in episodes_dir.glob("*.npz"):          # a copy: planner episodes are added to the data directory
        (data_dir / f.name).write_bytes(f.read_bytes())
    args = ["train", "planet", "--data", str(data_dir), "--out", str(root / "run"), "--quiet"]
    sets = [x for s in TINY for x in ("--set", s)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_WAIT_POLICY", "PASSIVE")
        assert main(args + sets) == 0
        assert main(args + sets) == 2                                      # exists: refuse to clobber
        assert main(args + ["--resume"]) == 2                              # nothing to resume: a clear refusal
    return root


@needs_torch
def test_training_writes_checkpoint_logs_figures_and_model(trained_run):
    run = trained_run / "run"
    for name in ("checkpoints/last.pt", "train_log.csv", "curves.png", "open_loop.png", "open_loop.csv",
                 "summary.json", "config.yaml", "onnx/metadata.json", "onnx/task.onnx", "onnx/observe.onnx",
                 "onnx/imagine_h3.onnx", "onnx/imagine_h12.onnx"):
        assert (run / name).is_file(), name
    assert (run / "open_loop.png").read_bytes()[:4] == b"\x89PNG"
    phases = [line.split(",")[:2] for line in (run / "train_log.csv").read_text().splitlines()[1:]]
    assert phases == [["locator", "2"], ["locator", "3"], ["tip", "2"], ["tip", "3"], ["dynamics", "2"],
                      ["dynamics", "4"], ["dynamics", "6"]]
    rows = (run / "open_loop.csv").read_text().splitlines()
    assert rows[0].startswith("horizon,target_error_true,target_error_located") and len(rows) == 4
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == {"locator": 3, "tip": 3, "dynamics": 6}
    assert len(summary["planner_episodes"]) == 2                            # dynamics steps 3 and 6
    assert len(list((trained_run / "data").glob("train-*_planner_*.npz"))) == 2
    assert summary["val_planning"]["episodes"] == 1 and 0 <= summary["val_planning"]["successes"] <= 1
    assert np.isfinite(summary["locator"]["val_median_m"])


@needs_torch
def test_exported_graphs_match_the_torch_model(trained_run):
    import torch

    from il_robot.learning.planet.positions import PositionBackend
    from il_robot.learning.planet.checkpoint import positions_model_from_checkpoint
    from il_robot.policies.planet import PlanetModel

    meta = json.loads((trained_run / "run" / "onnx" / "metadata.json").read_text())
    assert meta["latent"]["world_model"] == "positions"
    assert meta["latent"]["belief_size"] == 11 and meta["reward"]["reach_behind"] == 0.075
    assert meta["action"]["bound"] == 0.12
    assert max(meta["verification"]["max_abs_diff"].values()) <= 1e-4
    onnx_model = PlanetModel(trained_run / "run" / "onnx")
    ckpt = torch.load(trained_run / "run" / "checkpoints" / "last.pt", weights_only=True)
    ref = PositionBackend(positions_model_from_checkpoint(ckpt)[0])
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    task = ref.task_vector(frame)
    np.testing.assert_allclose(onnx_model.task_vector(frame), task, atol=1e-4)
    belief, state = np.zeros((1, 11), np.float32), np.zeros((1, 1), np.float32)
    joints, action = np.linspace(-1, 1, 14), np.array([[0.1, -0.05, 0.0]], np.float32)
    got, want = onnx_model.observe(belief, state, action, frame, joints, task), ref.observe(belief, state, action,
                                                                                            frame, joints, task)
    np.testing.assert_allclose(got[0], want[0], atol=1e-4)
    np.testing.assert_allclose(got[0][0, 6:9], action[0] / 0.2, atol=1e-6)   # the command, in bounds
    assert np.all((got[0][0, 9:11] > 0) & (got[0][0, 9:11] < 32))              # the target's map cell
    tracked = onnx_model.observe(got[0], state, action, frame, joints, task)   # now with a previous cell
    np.testing.assert_allclose(tracked[0], ref.observe(got[0], state, action, frame, joints, task)[0], atol=1e-4)
    seqs = rng.uniform(-0.2, 0.2, (9, 3, 3))
    np.testing.assert_allclose(onnx_model.returns(want[0], state, seqs, task), ref.returns(want[0], state, seqs, task),
                               atol=1e-4)


@needs_torch
def test_policy_runs_an_episode_with_the_position_model(trained_run, tmp_path):
    from il_robot.data.generate import DemoJob, record_demo
    from il_robot.rollout import InProcessStack
    from il_robot.sim.tasks import make_task
    from il_robot.sim.world import PushingWorld

    demo = tmp_path / "heldout-000_demo00_expert"
    record_demo(DemoJob("heldout", 0, 0, "expert", 7, str(demo), "mcap", 1.0))
    policy = make_policy("planet", PolicyConfig(model_dir=str(trained_run / "run" / "onnx"), demos=[str(demo)]))
    assert policy.task.shape == (4,) and policy.mpc.repeat == 2
    world = PushingWorld(make_task("heldout", 0))
    result = InProcessStack(world).run_episode(policy, 3, duration=0.5)
    world.close()
    assert np.isfinite(result.final_distance) and result.task == "heldout/000"
