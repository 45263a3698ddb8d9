"""Correction episodes of human-gated DAgger: of a bag the learned policy drove, the frames the operator took over.

A correction session's recorder writes its round into each bag (CORRECTION_ROUND_KEY);
the policy node publishes the operator's command on /teleop/correction at every frame
they drove. Those frames, labelled with that command, are the correction episode
(skill "correction", control-only, never embedded, like the scripted expert's DAgger
episodes); the frames the policy drove teach nothing new and are left out. An
episode the operator never took over has no correction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from il_robot.data import messages
from il_robot.data.bag_format import ACTION_MATCH_TOLERANCE
from il_robot.data.bag_reader import Episode, EpisodeFrames

# The recorder of a correction session writes its round into every bag's metadata.yaml custom_data
# under this key; a bag with it is a correction episode of that round, never a demo.
CORRECTION_ROUND_KEY = "il_robot.correction_round"
CORRECTION_SKILL = "correction"   # as il_robot.learning's TecNet data reads it
HUMAN_LABELLER = "human"          # dagger.labeller of these episodes (the scripted expert's are its mode names)


@dataclass
class Takeover:
    frames: EpisodeFrames   # the frames the operator drove, `action` = their command there
    segments: int           # takeovers (runs of consecutive driven frames)
    driven: int             # frames of the whole episode (the policy's and the operator's)


def correction_round(custom_data: dict[str, str]) -> int | None:
    """The round a bag's recorder wrote (None for a demo); ValueError for anything but a positive integer."""
    text = custom_data.get(CORRECTION_ROUND_KEY)
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"metadata custom_data {CORRECTION_ROUND_KEY}={text!r} is not a round number (1, 2, ...)")
    return value


def takeover(episode: Episode) -> Takeover:
    """The frames with a correction stamped with them (within ACTION_MATCH_TOLERANCE), relabelled with it."""
    f = episode.frames
    keep = np.zeros(f.t.size, bool)
    action = f.action.copy()
    c = episode.corrections
    if c is not None and c.stamp_ns.size and f.t.size:
        order = np.argsort(c.stamp_ns, kind="stable")
        stamps, v = c.stamp_ns[order], c.v[order]
        i = np.clip(np.searchsorted(stamps, f.stamp_ns), 1, stamps.size) - 1
        j = np.minimum(i + 1, stamps.size - 1)
        nearest = np.where(np.abs(stamps[j] - f.stamp_ns) < np.abs(stamps[i] - f.stamp_ns), j, i)
        keep = np.abs(stamps[nearest] - f.stamp_ns) <= messages.to_ns(ACTION_MATCH_TOLERANCE)
        action[keep] = v[nearest[keep]]
    segments = int(np.sum(np.diff(np.concatenate([[0], keep.astype(int)])) == 1))
    frames = EpisodeFrames(stamp_ns=f.stamp_ns[keep], t=f.t[keep], image=f.image[keep], q=f.q[keep], qd=f.qd[keep],
                           action=action[keep], held_actions=0, dropped_frames=int(f.t.size - keep.sum()))
    return Takeover(frames, segments, int(f.t.size))
