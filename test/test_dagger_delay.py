"""DAgger with a lagging camera: the learner acts on old frames, the expert labels the present."""

import numpy as np

from il_robot.learning.dagger import LearnerWithExpertLabels, make_labeller
from il_robot.rollout import InProcessStack
from il_robot.sim.tasks import make_task
from il_robot.sim.world import PushingWorld

FRAME = 0.05   # s, the 20 Hz camera


def run(delay: float):
    seen = []

    def learner(obs):
        seen.append(obs)
        return np.zeros(3)

    policy = LearnerWithExpertLabels(learner, make_labeller("continuous"), 0.0, np.random.default_rng(0), delay)
    world = PushingWorld(make_task("train", 3))
    try:
        InProcessStack(world).run_episode(policy, 11, 1.0)
    finally:
        world.close()
    return seen, policy.frames


def test_the_learner_sees_the_frame_of_delay_ago_and_the_sample_pairs_it_with_the_present_label():
    now_seen, now_frames = run(0.0)
    seen, frames = run(0.1)
    lag = round(0.1 / FRAME)
    assert len(seen) == len(frames) == len(now_frames) > 10
    times = np.array([f[0] for f in frames])
    # the first frames act on the first one; then always the one 0.1 s (two frames) old
    assert [o.t for o in seen[:lag + 1]] == [times[0]] * (lag + 1)
    assert np.allclose([o.t for o in seen[lag:]], times[:-lag])
    for (t, image, q, qd, label), obs in zip(frames, seen):
        assert image is obs.image and q is obs.q and qd is obs.qd      # stored: what the learner acted on
    # The learner never moves the arm (zeros), so both runs see the same scene: the labels are the present's.
    assert np.allclose([f[4] for f in frames], [f[4] for f in now_frames])
    assert not np.allclose([f[4] for f in frames[lag:]], [f[4] for f in frames[:-lag]])


def test_a_delay_out_of_range_or_with_a_person_correcting_is_refused(tmp_path, capsys):
    from il_robot.cli.main import main

    base = ["dataset", "dagger", str(tmp_path), "--model-dir", str(tmp_path)]
    assert main(base + ["--observation-delay", "0.7"]) == 2
    assert "observation delay must be within 0..0.5 s" in capsys.readouterr().err
    assert main(base + ["--observation-delay", "0.1", "--labeller", "human"]) == 2
    assert "a person corrects at the real lag" in capsys.readouterr().err
