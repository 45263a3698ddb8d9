"""PlaNet: CEM planner, world model, collection -> training -> export -> runtime policy, and refusals.

Everything runs on tiny networks and 1-second episodes so that the file stays well under two
minutes on a busy laptop. The CEM and runtime tests need no torch; the rest skip without it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from il_robot.policies.base import Observation, PolicyConfig, PolicyLoadError
from il_robot.policies.catalog import make_policy
from il_robot.policies.cem import CEMConfig, CEMPlanner

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch not installed (training extras)")

TINY = ["model.conv_depth=4", "model.belief_size=16", "model.state_size=4", "model.hidden_size=16",
        "model.task_size=4", "data.batch_size=3", "data.chunk_length=5", "data.action_repeat=2",
        "planner.horizon=3", "planner.candidates=16", "planner.top_k=4", "planner.iterations=2",
        "collect.train_tasks=2", "collect.val_tasks=1", "collect.seed_episodes_per_task=2",
        "collect.episode_duration=1.0", "collect.seed_sources=[expert,random]",
        "train.log_every=2", "train.eval_every=2", "train.checkpoint_every=2", "train.threads=1",
        "train.open_loop_context=2", "train.open_loop_horizon=4", "export.horizons=[12]",
        "train.encoder_pretrain_steps=3", "train.encoder_pretrain_batch=4"]


# -- CEM (numpy only) ---------------------------------------------------------------------------------

def quadratic(target: np.ndarray, calls: list):
    def evaluate(actions: np.ndarray) -> np.ndarray:
        calls.append(actions.shape)
        return -((actions - target) ** 2).sum(axis=(1, 2))
    return evaluate


def test_cem_finds_the_optimum_of_a_quadratic():
    rng = np.random.default_rng(0)
    target = rng.uniform(-0.8, 0.8, (5, 2))
    calls: list = []
    planner = CEMPlanner([-1, -1], [1, 1], CEMConfig(horizon=5, candidates=400, top_k=40, iterations=12), seed=1)
    plan = planner.plan(quadratic(target, calls))
    np.testing.assert_allclose(plan, target, atol=0.03)
    assert calls == [(400, 5, 2)] * 12            # one batch of all J candidates per iteration
    np.testing.assert_allclose(planner.act(quadratic(target, [])), target[0], atol=0.03)


def test_cem_respects_bounds_and_finds_a_corner_optimum():
    target = np.tile([0.5, -0.4, 0.05], (4, 1))         # outside the box on two axes
    low, high = np.array([-0.2, -0.2, -0.2]), np.array([0.2, 0.2, 0.2])
    seen = []

    def evaluate(actions):
        seen.append(actions.copy())
        return -((actions - target) ** 2).sum(axis=(1, 2))

    planner = CEMPlanner(low, high, CEMConfig(horizon=4, candidates=300, top_k=30, iterations=15), seed=0)
    plan = planner.plan(evaluate)
    assert all(np.all(a >= low) and np.all(a <= high) for a in seen)
    np.testing.assert_allclose(plan[:, :2], np.tile([0.2, -0.2], (4, 1)), atol=0.01)
    np.testing.assert_allclose(plan[:, 2], 0.05, atol=0.03)


def test_cem_warm_starts_from_the_shifted_plan_and_resets():
    planner = CEMPlanner([-1], [1], CEMConfig(horizon=3, candidates=50, top_k=5, iterations=3), seed=0)
    np.testing.assert_array_equal(planner.initial_mean(), np.zeros((3, 1)))
    plan = planner.plan(lambda a: -((a - np.array([[0.1], [0.5], [0.9]])) ** 2).sum(axis=(1, 2)))
    np.testing.assert_array_equal(planner.initial_mean(), np.concatenate([plan[1:], plan[-1:]]))
    planner.reset()
    np.testing.assert_array_equal(planner.initial_mean(), np.zeros((3, 1)))


def test_cem_rejects_bad_settings_and_scores():
    with pytest.raises(ValueError, match="top_k"):
        CEMPlanner([-1], [1], CEMConfig(candidates=10, top_k=20))
    with pytest.raises(ValueError, match="low < high"):
        CEMPlanner([1], [-1])
    planner = CEMPlanner([-1], [1], CEMConfig(horizon=2, candidates=8, top_k=2, iterations=1))
    with pytest.raises(ValueError, match="scores"):
        planner.plan(lambda a: np.zeros(3))
    nan_first = planner.plan(lambda a: np.where(np.arange(8) == 0, np.nan, -np.abs(a).sum(axis=(1, 2))))
    assert np.all(np.isfinite(nan_first))


def test_runtime_modules_do_not_import_torch():
    code = ("import sys\nimport il_robot.policies.planet, il_robot.policies.cem, il_robot.learning.planet.truth\n"
            "import il_robot.learning.planet.data, il_robot.cli.planet_bench\nprint('TORCH', 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "TORCH False" in out.stdout


# -- data --------------------------------------------------------------------------------------------------

def test_model_step_actions_average_the_ticks_before_each_frame():
    from il_robot.learning.planet.data import model_step_actions

    action = np.arange(12, dtype=np.float32).reshape(6, 2) / 100     # 0.00 .. 0.11
    got = model_step_actions(action, np.array([0, 2, 4]), repeat=2, bound=0.2)
    np.testing.assert_allclose(got, [[0, 0], [0.01, 0.02], [0.05, 0.06]], atol=1e-7)
    clipped = model_step_actions(np.full((4, 3), 0.5, np.float32), np.array([3]), repeat=2, bound=0.2)
    np.testing.assert_allclose(clipped, [[0.2, 0.2, 0.2]])


def test_retargeted_expert_pushes_the_distractor_home_or_the_target_elsewhere():
    """Seed sources for contact the demos lack: 'wrong' pushes the distractor to the goal and leaves the
    target where it was; 'redirect' pushes the target to its own random point, not to the goal."""
    from il_robot.learning.planet.data import _stack_for, run_episode, seed_policy
    from il_robot.learning.planet.reward import goal_distance

    stack = _stack_for("train", 0)
    arrays, meta = run_episode(stack, seed_policy("wrong", 7, 0.2), 7, 8.0, "wrong")
    assert meta["source"] == "wrong" and not meta["success"]
    assert np.linalg.norm(arrays["target"][-1, :2] - arrays["target"][0, :2]) < 0.01
    assert goal_distance(arrays["distractor"][-1]) < 0.5 * goal_distance(arrays["distractor"][0])
    policy = seed_policy("redirect", 8, 0.2)
    arrays, _ = run_episode(stack, policy, 8, 8.0, "redirect")
    aim = policy.goal[:2]
    start, end = arrays["target"][0, :2], arrays["target"][-1, :2]
    moved, wanted = end - start, aim - start
    cosine = moved @ wanted / (np.linalg.norm(moved) * np.linalg.norm(wanted))
    print(f"redirect: moved {np.linalg.norm(moved):.3f} m, cosine to the aim {cosine:.2f}")
    assert np.linalg.norm(moved) > 0.05 and cosine > 0.7                   # pushed towards its own point


@pytest.fixture(scope="module")
def episodes_dir(tmp_path_factory) -> Path:
    """Tiny seed data: 2 train tasks x (expert, random) + 1 val episode, 1 s each."""
    from il_robot.learning.planet.data import CollectConfig, collect_seed

    root = tmp_path_factory.mktemp("planet_data") / "episodes"
    cfg = CollectConfig(train_tasks=2, val_tasks=1, seed_episodes_per_task=2, seed_sources=["expert", "random"],
                        episode_duration=1.0)
    summary = collect_seed(root, cfg, action_bound=0.2, progress=False)
    assert summary["collected"] == 5 and not summary["failed"]
    assert collect_seed(root, cfg, action_bound=0.2, progress=False)["collected"] == 0    # resume: nothing to do
    return root


def test_collected_episodes_hold_what_training_needs(episodes_dir):
    from il_robot.learning.planet.data import SequenceSampler, load_episodes
    from il_robot.learning.planet.reward import RewardConfig

    episodes = load_episodes(episodes_dir)
    assert sorted(e.meta["source"] for e in episodes) == ["expert", "expert", "expert", "random", "random"]
    e = episodes[0]
    assert e.arrays["image"].shape == (20, 64, 64, 3) and e.arrays["image"].dtype == np.uint8
    assert {k: e.arrays[k].shape[1] for k in ("q", "qd", "action", "tip", "target")} == {
        "q": 7, "qd": 7, "action": 3, "tip": 3, "target": 3}
    assert e.meta["task_set"] in ("train", "val") and e.meta["task_spec"]["target"]["rgba"]
    sampler = SequenceSampler(episodes, repeat=2, length=5, bound=0.2, reward_cfg=RewardConfig(),
                              rng=np.random.default_rng(0))
    batch = sampler.sample(3)
    assert batch["image"].shape == (3, 5, 64, 64, 3) and batch["task_frame"].shape == (3, 64, 64, 3)
    assert batch["action"].shape == (3, 5, 3) and np.all(np.abs(batch["action"]) <= 0.2 + 1e-6)
    assert np.all(batch["reward"] < 0) and np.all(np.isfinite(batch["joints"]))
    assert batch["position"].shape == (3, 5, 9)     # tip, target, distractor: the auxiliary targets
    np.testing.assert_array_equal(sampler.positions[0][:, 3:6], sampler.episodes[0].arrays["target"])


# -- model -----------------------------------------------------------------------------------------------------

def tiny_model():
    from il_robot.learning.planet.rssm import ModelConfig, PlaNet

    return PlaNet(ModelConfig(conv_depth=4, belief_size=16, state_size=4, hidden_size=16, task_size=4,
                              keypoint_layers=(1, 2)))


def random_batch(b=2, n=4, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return {"image": torch.rand(b, n, 3, 64, 64, generator=g) * 255, "joints": torch.randn(b, n, 14, generator=g),
            "action": (torch.rand(b, n, 3, generator=g) - 0.5) * 0.4, "reward": -torch.rand(b, n, generator=g) * 0.3,
            "position": torch.rand(b, n, 9, generator=g) * 0.5, "task_frame": torch.rand(b, 3, 64, 64, generator=g) * 255}


@needs_torch
def test_model_shapes_and_losses_are_finite():
    import torch

    from il_robot.learning.planet.rssm import LossConfig, world_model_losses

    torch.manual_seed(0)
    model = tiny_model()
    batch = random_batch()
    task = model.task_vector(batch["task_frame"])
    assert task.shape == (2, 4) and torch.all(task.abs() <= 1)
    post = model.observe(batch["image"], batch["joints"], batch["action"], task)
    assert post["belief"].shape == (2, 4, 16) and post["state"].shape == (2, 4, 4)
    image, joints = model.decode(post["belief"][:, 0], post["state"][:, 0])
    assert image.shape == (2, 3, 64, 64) and joints.shape == (2, 14)
    imagined = model.imagine(post["belief"][:, -1], post["state"][:, -1], batch["action"], task)
    assert imagined["reward"].shape == (2, 4)
    losses = world_model_losses(model, batch, LossConfig())
    assert set(losses) == {"loss", "image_loss", "joint_loss", "reward_loss", "position_loss", "kl", "reward_rmse",
                           "target_xy_error"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["kl"] >= 0
    # The posterior reads the task: another task vector, another filtered state from the same frames.
    other = model.observe(batch["image"], batch["joints"], batch["action"], -task, sample=False)["state"]
    assert not torch.allclose(other, model.observe(batch["image"], batch["joints"], batch["action"], task,
                                                   sample=False)["state"])


@needs_torch
def test_positions_reward_head_scores_the_decoded_positions_with_the_known_reward():
    """reward_head 'positions': the planner's reward is planet.reward.reward of the tip and target the
    task-conditioned position head decodes (so another task vector gives another reward)."""
    import torch

    from il_robot.learning.planet.rssm import ModelConfig, PlaNet
    from il_robot.learning.planet.reward import RewardConfig, reward

    torch.manual_seed(0)
    model = PlaNet(ModelConfig(conv_depth=4, belief_size=16, state_size=4, hidden_size=16, task_size=4,
                               reward_head="positions"))
    model.set_normalisation(np.zeros(14), np.ones(14), 0.2, -0.2, 0.1, np.full(9, 0.3), np.full(9, 0.1),
                            goal_xy=(0.55, 0.0), reward_weights=(1.0, 0.25))
    belief, state, task = torch.randn(5, 16), torch.randn(5, 4), torch.randn(5, 4).tanh()
    with torch.no_grad():
        got = model.reward(belief, state, task).numpy()
        p = model.positions(belief, state, task).numpy()
        other = model.reward(belief, state, -task).numpy()
    np.testing.assert_allclose(got, reward(p[:, :3], p[:, 3:6], RewardConfig(1.0, 0.25)), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, other)
    with pytest.raises(ValueError, match="reward_head"):
        PlaNet(ModelConfig(reward_head="oracle"))


@needs_torch
def test_overshooting_scores_open_loop_predictions_against_later_frames():
    """The overshooting terms compare the state imagined d steps ahead of frame t with frame t + d's truth:
    a position head that outputs the truth of frame t + d exactly makes the position term zero."""
    import torch

    from il_robot.learning.planet.rssm import LossConfig, overshooting_losses, world_model_losses

    torch.manual_seed(0)
    model = tiny_model()
    batch = random_batch(n=5)
    losses = world_model_losses(model, batch, LossConfig(overshooting=3))
    assert losses["overshoot_position_loss"] > 0 and torch.isfinite(losses["loss"])
    assert "overshoot_reward_loss" not in world_model_losses(model, batch, LossConfig())
    # Distances: a chunk of 5 frames has 4 + 3 + 2 open-loop predictions for d = 1, 2, 3.
    task = model.task_vector(batch["task_frame"])
    post = model.observe(batch["image"], batch["joints"], batch["action"], task, sample=False)
    calls = []
    real = model.position_decoder.forward
    model.position_decoder.forward = lambda x: calls.append(x.shape[0]) or real(x)
    overshooting_losses(model, post, batch["action"], task, batch["reward"], batch["position"], 3)
    assert calls == [2 * 4, 2 * 3, 2 * 2]


@needs_torch
def test_a_few_training_steps_reduce_the_loss(episodes_dir):
    import torch

    from il_robot.learning.planet.data import SequenceSampler, load_episodes, split
    from il_robot.learning.planet.rssm import LossConfig, world_model_losses
    from il_robot.learning.planet.reward import RewardConfig

    torch.manual_seed(0)
    torch.set_num_threads(1)
    sampler = SequenceSampler(split(load_episodes(episodes_dir), "train"), 2, 5, 0.2, RewardConfig(),
                              np.random.default_rng(0))
    model = tiny_model()
    mean, std = sampler.reward_stats()
    model.set_normalisation(np.zeros(14), np.ones(14), 0.2, mean, std, *sampler.position_stats())
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, eps=1e-4)
    batch = {k: torch.from_numpy(v) for k, v in sampler.sample(4).items()}
    batch["image"] = batch["image"].permute(0, 1, 4, 2, 3).float()
    batch["task_frame"] = batch["task_frame"].permute(0, 3, 1, 2).float()
    losses = []
    for _ in range(15):
        loss = world_model_losses(model, batch, LossConfig())
        optimizer.zero_grad()
        loss["loss"].backward()
        optimizer.step()
        losses.append(loss["loss"].item())
    assert losses[-1] < 0.7 * losses[0], losses


@needs_torch
def test_encoder_pretraining_finds_the_objects_and_feeds_the_posterior(episodes_dir):
    """Pretraining lowers the frame position loss with only the encoder, task head and frame head
    moving; with posterior_positions the filter's output depends on that head's estimate."""
    import torch

    from il_robot.learning.planet.data import SequenceSampler, load_episodes, split
    from il_robot.learning.planet.rssm import ModelConfig, PlaNet
    from il_robot.learning.planet.pretrain import pretrain_encoder
    from il_robot.learning.planet.reward import RewardConfig

    torch.manual_seed(0)
    torch.set_num_threads(1)
    sampler = SequenceSampler(split(load_episodes(episodes_dir), "train"), 2, 5, 0.2, RewardConfig(),
                              np.random.default_rng(0), hue_augment=0.5)
    frames = sampler.sample_frames(6)
    assert frames["image"].shape == (6, 64, 64, 3) and frames["position"].shape == (6, 9)
    model = PlaNet(ModelConfig(conv_depth=4, belief_size=16, state_size=4, hidden_size=16, task_size=4,
                               keypoint_layers=(1, 2), posterior_positions=True))
    model.set_normalisation(np.zeros(14), np.ones(14), 0.2, -0.2, 0.1, *sampler.position_stats())
    gru_before = model.gru.inputs.weight.detach().clone()
    first = pretrain_encoder(model, sampler, 5, 16, 1e-2, 1e-4, log_every=5, progress=False)
    last = pretrain_encoder(model, sampler, 150, 16, 1e-2, 1e-4, log_every=25, progress=False)
    assert last["frame_position_loss"] < 0.7 * first["frame_position_loss"], (first, last)
    assert torch.equal(model.gru.inputs.weight, gru_before)           # the world model itself is untouched
    batch = random_batch()
    task = model.task_vector(batch["task_frame"])
    before = model.observe(batch["image"], batch["joints"], batch["action"], task, sample=False)["state"]
    with torch.no_grad():
        model.frame_position_head[-1].bias.add_(1.0)
    after = model.observe(batch["image"], batch["joints"], batch["action"], task, sample=False)["state"]
    assert not torch.allclose(before, after)


# -- the CLI round trip: collect, train (+ planner episodes), resume, export -----------------------------------

@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, episodes_dir):
    from il_robot.cli.main import main

    if not HAS_TORCH:
        pytest.skip("torch not installed (training extras)")
    root = tmp_path_factory.mktemp("planet_run")
    data_dir = root / "data"
    data_dir.mkdir()
    for f in episodes_dir.glob("*.npz"):          # a copy: planner episodes are added to the data directory
        (data_dir / f.name).write_bytes(f.read_bytes())
    run = root / "run"
    args = ["train", "planet", "--data", str(data_dir), "--out", str(run), "--quiet", "--world-model", "rssm"]
    sets = [x for s in TINY for x in ("--set", s)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OMP_WAIT_POLICY", "PASSIVE")
        assert main(args + ["--steps", "4", "--collect-every", "3"] + sets) == 0
        assert main(args + ["--steps", "6"] + sets) == 2                   # exists: refuse to clobber
        assert main(args + ["--steps", "6", "--resume"]) == 0
    return root


@needs_torch
def test_training_writes_checkpoints_logs_figures_video_and_model(trained_run):
    from il_robot.learning.planet.checkpoint import load_checkpoint
    from il_robot.video import read_video_frame_count

    run = trained_run / "run"
    for name in ("checkpoints/last.pt", "train_log.csv", "val_log.csv", "curves.png", "open_loop.png",
                 "open_loop.csv", "open_loop.mp4", "summary.json", "config.yaml", "onnx/metadata.json",
                 "onnx/task.onnx", "onnx/observe.onnx", "onnx/imagine_h3.onnx", "onnx/imagine_h12.onnx"):
        assert (run / name).is_file(), name
    assert (run / "open_loop.png").read_bytes()[:4] == b"\x89PNG"
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 6
    steps = [int(line.split(",")[0]) for line in (run / "train_log.csv").read_text().splitlines()[1:]]
    assert steps == [2, 4, 6]
    rows = (run / "open_loop.csv").read_text().splitlines()
    assert rows[0] == "horizon,image_mse,reward_mae,target_xy_error,sequences" and len(rows) == 5      # horizons 1..4
    assert read_video_frame_count(run / "open_loop.mp4") > 0
    planner_eps = list((trained_run / "data").glob("train-*_planner_*.npz"))
    assert len(planner_eps) == 2        # steps 3 and 6: --collect-every is saved with the run and kept on resume
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["data"]["train"]["by_source"]["planner"] == 2
    pretrain_steps = [int(line.split(",")[0]) for line in (run / "pretrain_log.csv").read_text().splitlines()[1:]]
    assert pretrain_steps == [2, 3] and summary["encoder_pretrain"] is None   # a fresh run only, not on resume


@needs_torch
def test_metadata_describes_the_model(trained_run):
    meta = json.loads((trained_run / "run" / "onnx" / "metadata.json").read_text())
    assert meta["format"] == "il_robot.planet" and meta["version"] == 2
    assert set(meta["models"]) == {"task", "observe", "imagine_h3", "imagine_h12"}
    assert meta["models"]["imagine_h3"]["inputs"]["actions"]["shape"] == ["N", 3, 3]
    assert meta["models"]["observe"]["inputs"]["joints"]["shape"] == ["N", 14]
    assert meta["action"]["bound"] == 0.2 and meta["action"]["repeat"] == 2 and meta["action"]["units"] == "m/s"
    assert meta["planner"]["horizon"] == 3 and meta["planner"]["horizons"] == [3, 12]
    assert meta["reward"]["reach_weight"] == 0.5 and meta["latent"]["belief_size"] == 16
    assert len(meta["joints"]["mean"]) == 14 and meta["training"]["steps"] == 6
    assert meta["source"]["git"].keys() == {"commit", "dirty"}
    assert max(meta["verification"]["max_abs_diff"].values()) <= 1e-4


@needs_torch
def test_onnxruntime_matches_torch(trained_run):
    import onnxruntime as ort
    import torch

    from il_robot.learning.planet.export import INPUTS, OUTPUTS, _module, random_inputs
    from il_robot.learning.planet.checkpoint import load_checkpoint, model_from_checkpoint

    model, _ = model_from_checkpoint(load_checkpoint(trained_run / "run" / "checkpoints" / "last.pt"))
    for name, kind, horizon in (("task", "task", None), ("observe", "observe", None),
                                ("imagine_h3", "imagine", 3), ("imagine_h12", "imagine", 12)):
        x = random_inputs(model, kind, 7, horizon or 1, seed=5)
        session = ort.InferenceSession(str(trained_run / "run" / "onnx" / f"{name}.onnx"),
                                       providers=["CPUExecutionProvider"])
        got = session.run(OUTPUTS[kind], x)
        with torch.no_grad():
            expected = _module(model, kind, horizon)(*(torch.from_numpy(x[k]) for k in INPUTS[kind]))
        expected = expected if isinstance(expected, tuple) else (expected,)
        for g, e in zip(got, expected):
            assert g.shape == tuple(e.shape)
            np.testing.assert_allclose(g, e.numpy(), atol=1e-4, rtol=0)
            assert np.ptp(g) > 0 or g.size == 1 or kind == "task"     # not a constant graph


@needs_torch
def test_export_cli_refuses_to_overwrite(trained_run, tmp_path):
    from il_robot.cli.main import main

    ckpt = str(trained_run / "run" / "checkpoints" / "last.pt")
    out = tmp_path / "planet"
    assert main(["export", "planet", "--checkpoint", ckpt, "--out", str(out), "--horizons", "5"]) == 0
    assert main(["export", "planet", "--checkpoint", ckpt, "--out", str(out)]) == 2
    assert main(["export", "planet", "--checkpoint", ckpt, "--out", str(out), "--force"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["imagine_h12.onnx", "imagine_h3.onnx", "metadata.json",
                                                     "observe.onnx", "task.onnx"]
    assert not out.with_name("planet.partial").exists()


# -- runtime policy on the exported model (onnxruntime, no torch) ------------------------------------------------

@pytest.fixture(scope="module")
def demo_bag(tmp_path_factory) -> Path:
    from il_robot.data.generate import DemoJob, record_demo

    path = tmp_path_factory.mktemp("planet_demo") / "heldout-000_demo00_expert"
    record_demo(DemoJob("heldout", 0, 0, "expert", 7, str(path), "mcap", 1.0))
    return path


def observation(image=None) -> Observation:
    from il_robot.robot import panda_like

    return Observation(0.0, np.array(panda_like.HOME_Q), np.zeros(7), np.array([0.5, 0.0, 0.1]),
                       np.zeros((64, 64, 3), np.uint8) if image is None else image)


@needs_torch
def test_policy_plans_with_the_exported_model(trained_run, demo_bag):
    model_dir = trained_run / "run" / "onnx"
    policy = make_policy("planet", PolicyConfig(model_dir=str(model_dir), demos=[str(demo_bag)]))
    assert policy.needs_image and policy.mpc.repeat == 2 and policy.task.shape == (4,)
    policy.check(observation())
    actions = [policy.act(observation(np.full((120, 160, 3), 90 + 10 * i, np.uint8))) for i in range(6)]
    for a in actions:
        assert a.shape == (3,) and np.all(np.isfinite(a)) and np.all(np.abs(a) <= 0.2 + 1e-9)
    np.testing.assert_array_equal(actions[0], actions[1])       # held for the action repeat
    # Same numbers as the torch model the graphs came from.
    from il_robot.learning.planet.rssm import TorchBackend
    from il_robot.learning.planet.checkpoint import load_checkpoint, model_from_checkpoint

    torch_model, _ = model_from_checkpoint(load_checkpoint(trained_run / "run" / "checkpoints" / "last.pt"))
    ref = TorchBackend(torch_model)
    frame = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_allclose(policy.model.task_vector(frame), ref.task_vector(frame), atol=1e-4)
    belief, state = np.zeros((1, 16), np.float32), np.zeros((1, 4), np.float32)
    joints, action = np.linspace(-1, 1, 14), np.array([[0.1, -0.05, 0.0]], np.float32)
    for got, want in zip(policy.model.observe(belief, state, action, frame, joints, policy.task),
                         ref.observe(belief, state, action, frame, joints, policy.task)):
        np.testing.assert_allclose(got, want, atol=1e-4)
    seqs = np.random.default_rng(1).uniform(-0.2, 0.2, (9, 3, 3))
    np.testing.assert_allclose(policy.model.returns(belief, state, seqs, policy.task),
                               ref.returns(belief, state, seqs, policy.task), atol=1e-4)


@needs_torch
def test_policy_runs_an_episode_in_process(trained_run, demo_bag):
    from il_robot.rollout import InProcessStack
    from il_robot.sim.tasks import make_task
    from il_robot.sim.world import PushingWorld

    policy = make_policy("planet", PolicyConfig(model_dir=str(trained_run / "run" / "onnx"), demos=[str(demo_bag)]))
    world = PushingWorld(make_task("heldout", 0))
    result = InProcessStack(world).run_episode(policy, 3, duration=0.5)
    world.close()
    assert np.isfinite(result.final_distance) and result.task == "heldout/000"


@needs_torch
def test_missing_or_broken_model_is_refused(trained_run, demo_bag, tmp_path):
    import shutil

    good = trained_run / "run" / "onnx"
    demo = [str(demo_bag)]

    def copy(name: str) -> Path:
        return Path(shutil.copytree(good, tmp_path / name))

    with pytest.raises(PolicyLoadError, match="PlaNet model directory .* not found"):
        make_policy("planet", PolicyConfig(model_dir=str(tmp_path / "nowhere"), demos=demo))
    no_meta = copy("no_meta")
    (no_meta / "metadata.json").unlink()
    with pytest.raises(PolicyLoadError, match="metadata.json missing"):
        make_policy("planet", PolicyConfig(model_dir=str(no_meta), demos=demo))
    missing = copy("missing")
    (missing / "observe.onnx").unlink()
    with pytest.raises(PolicyLoadError, match="observe.onnx not found"):
        make_policy("planet", PolicyConfig(model_dir=str(missing), demos=demo))
    corrupt = copy("corrupt")
    (corrupt / "imagine_h3.onnx").write_bytes(b"\x08\x07 not a protobuf \xff\xfe" * 20)
    with pytest.raises(PolicyLoadError, match="cannot load .*imagine_h3.onnx"):
        make_policy("planet", PolicyConfig(model_dir=str(corrupt), demos=demo))
    swapped = copy("swapped")
    shutil.copy(good / "task.onnx", swapped / "observe.onnx")
    with pytest.raises(PolicyLoadError, match="inputs are"):
        make_policy("planet", PolicyConfig(model_dir=str(swapped), demos=demo))
    for name, change, pattern in (
            ("format", lambda m: m.update(format="il_robot.tecnet"), "format 'il_robot.tecnet'"),
            ("horizon", lambda m: m["planner"].update(horizon=7), "no imagine graph for horizon 7"),
            ("sizes", lambda m: m["latent"].update(belief_size=32), "belief.*declared"),
            ("incomplete", lambda m: m.pop("action"), "incomplete"),
            ("planner", lambda m: m["planner"].update(top_k=99), "planner: .*top_k")):
        bad = copy(name)
        meta = json.loads((bad / "metadata.json").read_text())
        change(meta)
        (bad / "metadata.json").write_text(json.dumps(meta))
        with pytest.raises(PolicyLoadError, match=pattern):
            make_policy("planet", PolicyConfig(model_dir=str(bad), demos=demo))
    with pytest.raises(PolicyLoadError, match="needs at least one demo bag"):
        make_policy("planet", PolicyConfig(model_dir=str(good), demos=[]))
    with pytest.raises(PolicyLoadError, match="demo .*nowhere"):
        make_policy("planet", PolicyConfig(model_dir=str(good), demos=[str(tmp_path / "nowhere")]))


@needs_torch
def test_bad_observations_raise_instead_of_guessing(trained_run, demo_bag):
    policy = make_policy("planet", PolicyConfig(model_dir=str(trained_run / "run" / "onnx"), demos=[str(demo_bag)]))
    obs = observation()
    obs.image = None
    with pytest.raises(ValueError, match="camera image"):
        policy.act(obs)
    obs = observation()
    obs.qd = obs.qd * np.nan
    with pytest.raises(ValueError, match="NaN"):
        policy.act(obs)
    with pytest.raises(ValueError, match="uint8"):
        policy.act(observation(np.zeros((64, 64, 3), np.float32)))


@needs_torch
def test_bench_planet_reports_latency_for_shipped_and_paper_settings(trained_run, tmp_path, capsys):
    from il_robot.cli.main import main

    out = tmp_path / "bench.json"
    assert main(["bench", "planet", "--model-dir", str(trained_run / "run" / "onnx"), "--plans", "2",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "shipped config (H=3, J=16, K=4, I=2)" in text and "paper config (H=12, J=1000, K=100, I=10)" in text
    figures = json.loads(out.read_text())["planet"]["latency"]
    assert figures["paper"]["plan_step"]["n"] == 2 and figures["shipped"]["plan_step"]["p99_ms"] > 0


# -- the true-dynamics upper bound -----------------------------------------------------------------------------

def test_true_dynamics_planner_plans_on_a_copy_and_leaves_the_world_alone():
    import mujoco

    from il_robot.learning.planet.truth import STATE_SPEC, TrueDynamicsPlanner, TruthConfig
    from il_robot.rollout import InProcessStack, privileged_objects
    from il_robot.sim.tasks import make_task
    from il_robot.sim.world import PushingWorld

    world = PushingWorld(make_task("heldout", 1))
    stack = InProcessStack(world)
    planner = TrueDynamicsPlanner(stack, TruthConfig(horizon=2, candidates=4, top_k=2, iterations=1,
                                                     torque_every=5))
    world.reset(0)
    stack.controller.set_joint_state(world.joint_names, world.q, world.qd, world.clock)
    before = np.empty(mujoco.mj_stateSize(world.model, STATE_SPEC))
    mujoco.mj_getState(world.model, world.data, before, STATE_SPEC)
    tip, _ = stack.robot.tip_pose(world.q)
    action = planner.act(Observation(world.clock, world.q, world.qd, tip, None, privileged_objects(world)))
    after = np.empty_like(before)
    mujoco.mj_getState(world.model, world.data, after, STATE_SPEC)
    np.testing.assert_array_equal(before, after)
    assert action.shape == (3,) and np.all(np.abs(action) <= 0.2) and planner.rollouts == 4
    result = stack.run_episode(planner, 1, duration=0.4)
    assert np.isfinite(result.final_distance)
    planner.close()
    world.close()


@pytest.mark.parametrize("command", [["train", "planet"], ["export", "planet"]])
def test_cli_help_needs_no_torch(command):
    code = ("import sys\nfrom il_robot.cli.main import main\n"
            "try:\n    main(sys.argv[1:] + ['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "print('TORCH', 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code, *command], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"usage: il-robot {' '.join(command)}" in out.stdout and "TORCH False" in out.stdout


@needs_torch
def test_config_file_loads_and_typos_are_errors(tmp_path):
    from il_robot.learning.planet.rssm_config import check_config, load_config
    from il_robot.paths import config_file

    cfg = load_config(config_file("planet.yaml"))
    check_config(cfg)
    assert cfg.loss.free_nats == 3.0 and cfg.optim.eps == 1e-4 and cfg.optim.grad_clip == 1000.0
    assert 12 in cfg.export.horizons
    with pytest.raises(ValueError, match=r"planner: unknown key\(s\) \['horizn'\]"):
        load_config(None, ["planner.horizn=4"])
    with pytest.raises(ValueError, match="top_k"):
        check_config(load_config(None, ["planner.top_k=2000"]))


def test_hue_augment_turns_a_chunk_and_its_task_frame_together(episodes_dir):
    """A turned chunk shows other object colours in its frames and in its task frame alike (one task,
    new colours); the table, arm and goal pixels stay as they were."""
    import cv2

    from il_robot.learning.planet.data import SequenceSampler, load_episodes
    from il_robot.learning.planet.reward import RewardConfig

    episodes = load_episodes(episodes_dir)
    plain = SequenceSampler(episodes, 2, 5, 0.2, RewardConfig(), np.random.default_rng(3)).sample(1)
    turned = SequenceSampler(episodes, 2, 5, 0.2, RewardConfig(), np.random.default_rng(3), hue_augment=1.0).sample(1)
    np.testing.assert_array_equal(plain["position"], turned["position"])      # the same chunk
    for before, after in ((plain["image"][0, 0], turned["image"][0, 0]), (plain["task_frame"][0], turned["task_frame"][0])):
        changed = np.any(before != after, axis=-1)
        assert 0 < changed.mean() < 0.1
        saturation = cv2.cvtColor(before, cv2.COLOR_RGB2HSV)[..., 1]
        assert np.all(saturation[changed] > 100)        # only coloured (object) pixels turned


def test_shipped_planet_runs_out_of_the_box():
    """policy:=planet with no model_dir and no demo: the shipped model on its shipped held-out demo."""
    from il_robot.paths import models_dir

    if not (models_dir() / "planet" / "metadata.json").exists():
        pytest.skip("no PlaNet model shipped in models/planet")
    policy = make_policy("planet", PolicyConfig())
    assert "heldout-000" in policy.demos[0]
    policy.check(observation())
    actions = [policy.act(observation(np.full((64, 64, 3), 100, np.uint8))) for _ in range(5)]
    for a in actions:
        assert a.shape == (3,) and np.all(np.isfinite(a)) and np.all(np.abs(a) <= policy.mpc.bound + 1e-9)
