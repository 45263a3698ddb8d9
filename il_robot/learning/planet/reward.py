"""The reward PlaNet learns and plans for, from the simulator's privileged state (numpy only).

Per control frame:  r = -(goal_weight * |target_xy - goal_xy| + reach_weight * max(|tip - reach point| - reach_radius, 0))
  goal term:  the success measure itself (target centre to goal centre, xy, m);
  reach term: tool tip to the target's centre (3-D, m), a shaping term. With the goal
              term alone every plan that does not touch the target scores the same, and a
              12-step horizon seldom reaches contact from the start pose: the reach term
              tells the planner where to go first; once the tool is at the target it stays
              about constant while pushing, so the goal term decides the rest. With a
              reach_radius the tip only has to come that close: the centre itself is inside
              the object, and a planner that keeps reaching for it climbs onto the object and
              tips it over once the goal term is satisfied.
  reach point: the target's centre, or with reach_behind the point that far behind the
              target on the goal->target line at push_height: where a push towards the goal
              starts. Near the centre is also near the far side, where a push goes the wrong
              way, and a 12-step plan seldom sees the way round from there.
Episodes store the raw positions (tip, target), not the reward, so the weights are a
training setting and the true-dynamics baseline scores plans with the same function.
Shared by data collection, training and the true-dynamics planner; no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from il_robot.sim.tasks import GOAL_XY


@dataclass
class RewardConfig:
    goal_weight: float = 1.0      # weight of the target-to-goal distance (xy, m)
    reach_weight: float = 0.5     # weight of the tip-to-target distance (3-D, m); 0 = the plain success measure
    reach_radius: float = 0.0     # m: tip-to-reach-point distances below this cost nothing
    reach_behind: float = 0.0     # m: reach for the point this far behind the target (away from the goal); 0 = centre
    push_height: float = 0.02     # m: the reach point's height when reach_behind > 0 (the tip's pushing height)


def goal_distance(target) -> np.ndarray:
    """Target centre to goal centre in xy (m), over any leading dims of target (..., >=2)."""
    return np.linalg.norm(np.asarray(target)[..., :2] - np.asarray(GOAL_XY), axis=-1)


def reach_distance(tip, target) -> np.ndarray:
    return np.linalg.norm(np.asarray(tip)[..., :3] - np.asarray(target)[..., :3], axis=-1)


def reach_point(target, cfg: RewardConfig) -> np.ndarray:
    """(..., 3) where the tip should be: the target's centre, or the pushing point behind it."""
    target = np.asarray(target, dtype=np.float64)[..., :3]
    if cfg.reach_behind <= 0:
        return target
    to_goal = np.asarray(GOAL_XY) - target[..., :2]
    away = to_goal / np.sqrt((to_goal ** 2).sum(-1, keepdims=True) + 1e-12)
    return np.concatenate([target[..., :2] - cfg.reach_behind * away,
                           np.full(target.shape[:-1] + (1,), cfg.push_height)], axis=-1)


def reward(tip, target, cfg: RewardConfig) -> np.ndarray:
    """Reward (m, negative) per frame for tip (..., 3) and target centre (..., 3)."""
    reach = np.maximum(reach_distance(tip, reach_point(target, cfg)) - cfg.reach_radius, 0.0)
    return -(cfg.goal_weight * goal_distance(target) + cfg.reach_weight * reach)
