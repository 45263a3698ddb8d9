"""PlaNet with a position latent: the planner's state is where the tool tip and the target are.

The RSSM (rssm.py) has to discover, from pixels, that the few pixels of the target matter
and how a push moves them; on this CPU it did not within an hour of training (docs/planet.md). This
world model gives its latent a meaning instead, and learns each part from the same episodes:

  task      the demo's last frame shows the target at the goal: the conv features at the goal
            (a learned spatial weighting, initialised on the goal's pixels) are the task vector;
  locator   the target in a frame is where the features match the task vector: a task-matched
            spatial soft-argmax over a 32x32 map, then a small MLP to table coordinates (metres).
            Matching, not memorising, so a held-out task's new colour and shape are found alike;
  tip       the tool tip from the joint angles (a learned forward kinematics, no robot model at
            run time);
  dynamics  one model step (action_repeat control ticks) of tip and object: the tip's move from the
            command, the object's move from where it is *relative to the tip* and how the tip moves.
            Relative coordinates make a push learned anywhere on the table hold everywhere.

Belief (the filter's state, observe graph): tip (3), target (3), previous command / bound (3), and the
target's cell in the locator's map (2), where the next frame looks for it first. The planner imagines
with the dynamics from the belief and scores with the known reward of the positions.
Same graphs, inputs and outputs as the RSSM (task / observe / imagine), so the runtime, the policy node
and the benches run it unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from il_robot.learning.planet.rssm import ACTION_DIM, JOINT_DIM, frame_tensor, mlp
from il_robot.learning.planet.reward import RewardConfig
from il_robot.sim.tasks import GOAL_XY

MAP = 32                 # the locator's feature map is MAP x MAP (64 px frames, stride 2)
BELIEF_SIZE = 11         # tip (3), target (3), previous action in bounds (3), target's map cell (u, v; 0 = none)
STATE_SIZE = 1           # unused (zeros): the graphs keep the RSSM's (belief, state) interface


@dataclass
class PositionModelConfig:
    locator_channels: int = 32   # conv channels of the locator (3x3 convs on the 32x32 map)
    task_size: int = 32          # task vector = the locator's query: features of the target at the goal
    hidden_size: int = 128       # dense layers of the tip head and the dynamics
    goal_sigma: float = 1.5      # cells: initial spread of the task frame's weighting around the goal
    peak_sharpness: float = 4.0  # the locator's mode finder: softmax of this many times the logits
    peak_window: float = 2.0     # cells: the soft-argmax is taken within this spread around that mode
    track_sigma: float = 4.0     # cells: after the first frame, the target is looked for near where it was
                                 # (a Gaussian prior on the map; a push moves it under ~3 cells a step); 0 = off


def image_grid(n: int, size: int, device=None) -> torch.Tensor:
    """(n, 2, size, size) x (columns) and y (rows) coordinates in [-1, 1]: CoordConv channels."""
    lin = torch.linspace(-1.0, 1.0, size, device=device)
    return torch.stack([lin[None, :].expand(size, size), lin[:, None].expand(size, size)])[None].expand(n, -1, -1, -1)


def _cells(like: torch.Tensor) -> torch.Tensor:
    """The map's cell centres, 0.5 .. MAP - 0.5, in `like`'s dtype and device."""
    return torch.arange(MAP, dtype=like.dtype, device=like.device) + 0.5


def _attention(logits: torch.Tensor) -> torch.Tensor:
    """(N, MAP, MAP) softmax of the logits over the whole map."""
    return torch.softmax(logits.flatten(1), dim=1).view_as(logits)


def _centre(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The weighted mean cell (u: column, v: row) of maps (N, MAP, MAP) whose weights sum to 1."""
    cells = _cells(weights)
    return (weights.sum(1) * cells).sum(-1), (weights.sum(2) * cells).sum(-1)


class TargetLocator(nn.Module):
    """Frame + task vector -> target centre (m), through an attention map over the 32x32 features."""

    def __init__(self, cfg: PositionModelConfig, goal_cell: tuple[float, float] = (MAP / 2, MAP / 2)):
        super().__init__()
        c = cfg.locator_channels
        self.conv = nn.Sequential(nn.Conv2d(5, c, 4, 2, 1), nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1), nn.ReLU(),
                                  nn.Conv2d(c, c, 3, 1, 1))
        cells = torch.arange(MAP, dtype=torch.float32) + 0.5
        bump = -((cells[None, :] - goal_cell[0]) ** 2 + (cells[:, None] - goal_cell[1]) ** 2) / (2 * cfg.goal_sigma ** 2)
        self.goal_logits = nn.Parameter(bump)                  # where the task frame's target sits
        self.query = nn.Linear(c, cfg.task_size)
        self.key = nn.Conv2d(c, cfg.task_size, 1)
        self.log_gain = nn.Parameter(torch.zeros(()))
        self.to_position = mlp(2, 64, 3)                       # map coordinates -> table coordinates
        self.register_buffer("position_mean", torch.tensor([0.52, 0.0, 0.03]))
        self.register_buffer("position_std", torch.tensor([0.10, 0.14, 0.01]))
        self.peak_sharpness, self.window = float(cfg.peak_sharpness), float(cfg.peak_window)

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """(N, 3, 64, 64) 0..255 -> (N, C, 32, 32)."""
        x = image * (1.0 / 255.0) - 0.5
        return self.conv(torch.cat([x, image_grid(x.shape[0], x.shape[-1], x.device)], dim=1))

    def task_vector(self, frame: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.goal_logits.flatten(), 0).view(1, 1, MAP, MAP)
        return self.query((self.features(frame) * weights).sum((2, 3)))

    def logits(self, image: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """(N, 32, 32): how much each cell looks like the task's target."""
        keys = self.key(self.features(image))
        return (keys * task[:, :, None, None]).sum(1) * (self.log_gain.exp() / math.sqrt(keys.shape[1]))

    def position(self, logits: torch.Tensor) -> torch.Tensor:
        """Target centre (N, 3) m: the soft-argmax around the strongest mode. A plain soft-argmax of a map
        split between two look-alike objects lands between them, on neither; a sharpened copy finds
        the stronger one, and the map inside a window there gives its centre to a fraction of a cell."""
        return self.locate(logits)[0]

    def mean_position(self, logits: torch.Tensor) -> torch.Tensor:
        """Target centre (N, 3) m from the plain soft-argmax of the whole map: what training fits. Any
        attention on another object pulls it away and costs, so the map learns one mode; the windowed
        centre of `position` does not feel a second mode, and a locator trained on it kept one on the
        distractor (val p90 19 cm, planner runs 17 % instead of 83 %)."""
        return self._metres(torch.stack(_centre(_attention(logits)), dim=-1))

    def _metres(self, cell: torch.Tensor) -> torch.Tensor:
        uv = (cell - MAP / 2) / (MAP / 2 - 0.5)        # the [-1, 1] coordinates of linspace(-1, 1, MAP)
        return self.to_position(uv) * self.position_std + self.position_mean

    def locate(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(target centre (N, 3) m, the mode's map cell (N, 2) u, v in cells)."""
        cells = _cells(logits)
        attention = _attention(logits)
        u, v = _centre(_attention(self.peak_sharpness * logits))
        for _ in range(2):           # the sharpened centre is still pulled a little towards the other mode
            window = torch.exp(-((cells[None, None, :] - u[:, None, None]) ** 2
                                 + (cells[None, :, None] - v[:, None, None]) ** 2) / (2 * self.window ** 2))
            local = attention * window
            u, v = _centre(local / local.sum((1, 2), keepdim=True).clamp_min(1e-12))
        cell = torch.stack([u, v], dim=-1)
        return self._metres(cell), cell

    def track(self, logits: torch.Tensor, cell: torch.Tensor, sigma: float) -> torch.Tensor:
        """The logits with a Gaussian prior (sigma cells) around the previous frame's cell (N, 2); rows
        whose cell is (0, 0), no previous frame, are left alone."""
        cells = _cells(logits)
        have = (cell.abs().sum(-1) > 0).to(logits.dtype)[:, None, None]
        d2 = (cells[None, None, :] - cell[:, 0, None, None]) ** 2 + (cells[None, :, None] - cell[:, 1, None, None]) ** 2
        return logits - have * d2 / (2 * sigma ** 2)

    def forward(self, image: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        return self.position(self.logits(image, task))


class PushDynamics(nn.Module):
    """One model step of the tip and of one object, from positions (m) and commands (in bounds, -1..1).

    tip:    its move from the command, the previous command (the arm lags) and where it is (table, reach);
    object: its move (xy; z is kept) from its offset to the tip, the tip's height and its own, the
            commands and the tip's move: no absolute position, so pushes generalise over the table."""

    def __init__(self, hidden: int):
        super().__init__()
        self.tip_net = mlp(9, hidden, 3)
        self.object_net = mlp(13, hidden, 2)

    def forward(self, tip, obj, action, previous):
        tip_move = self.tip_net(torch.cat([tip[..., 2:3] * 10, action, previous, (tip[..., :2] - 0.5) * 5], -1)) * 0.02
        offset = (obj[..., :2] - tip[..., :2]) * 10
        move = self.object_net(torch.cat([offset, tip[..., 2:3] * 10, obj[..., 2:3] * 10, action, previous,
                                          tip_move * 50], -1)) * 0.02
        return tip + tip_move, torch.cat([obj[..., :2] + move, obj[..., 2:3]], -1)


class PositionWorldModel(nn.Module):
    kind = "positions"

    def __init__(self, cfg: PositionModelConfig, goal_cell: tuple[float, float] = (MAP / 2, MAP / 2),
                 reward: RewardConfig | None = None):
        super().__init__()
        self.cfg, self.reward_cfg = cfg, reward or RewardConfig()
        self.belief_size, self.state_size, self.task_size = BELIEF_SIZE, STATE_SIZE, cfg.task_size
        self.locator = TargetLocator(cfg, goal_cell)
        self.tip_head = mlp(JOINT_DIM // 2, cfg.hidden_size, 3)
        self.dynamics = PushDynamics(cfg.hidden_size)
        self.register_buffer("joint_mean", torch.zeros(JOINT_DIM))
        self.register_buffer("joint_std", torch.ones(JOINT_DIM))
        self.register_buffer("tip_mean", torch.tensor([0.5, 0.0, 0.2]))
        self.register_buffer("tip_std", torch.tensor([0.1, 0.1, 0.1]))
        self.register_buffer("action_scale", torch.ones(ACTION_DIM))      # m/s per unit: the action bound

    def set_normalisation(self, joint_mean, joint_std, tip_mean, tip_std, action_bound: float) -> None:
        with torch.no_grad():
            for buffer, value in ((self.joint_mean, joint_mean), (self.joint_std, joint_std),
                                  (self.tip_mean, tip_mean), (self.tip_std, tip_std)):
                buffer.copy_(torch.as_tensor(value, dtype=torch.float32))
            self.action_scale.fill_(float(action_bound))

    # -- parts ---------------------------------------------------------------------------------------
    def task_vector(self, frame: torch.Tensor) -> torch.Tensor:
        return self.locator.task_vector(frame)

    def tip(self, joints: torch.Tensor) -> torch.Tensor:
        """Tip position (m) from q (the first 7 of joints)."""
        q = (joints[..., :JOINT_DIM // 2] - self.joint_mean[:JOINT_DIM // 2]) / self.joint_std[:JOINT_DIM // 2]
        return self.tip_head(q) * self.tip_std + self.tip_mean

    def reward(self, tip: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """reward.reward in torch (the graph cannot call numpy; its settings become constants): m."""
        r = self.reward_cfg
        to_goal = torch.tensor(GOAL_XY, dtype=target.dtype, device=target.device) - target[..., :2]
        goal = torch.sqrt((to_goal ** 2).sum(-1, keepdim=True) + 1e-12)
        point = target
        if r.reach_behind > 0:
            point = torch.cat([target[..., :2] - r.reach_behind * to_goal / goal,
                               torch.full_like(target[..., 2:3], r.push_height)], dim=-1)
        reach = torch.sqrt(((tip - point) ** 2).sum(-1) + 1e-12)
        return -(r.goal_weight * goal[..., 0] + r.reach_weight * F.relu(reach - r.reach_radius))

    def observe(self, belief, action, image, joints, task):
        """Belief (N, 11) after a frame: the tip from the joints, the target from the frame, looked for near
        its cell in the previous belief (none at the episode start: zeros)."""
        logits = self.locator.logits(image, task)
        if self.cfg.track_sigma > 0:
            logits = self.locator.track(logits, belief[:, 9:11], self.cfg.track_sigma)
        target, cell = self.locator.locate(logits)
        return torch.cat([self.tip(joints), target, action / self.action_scale, cell], dim=-1)

    def imagine(self, belief: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Open loop from beliefs (N, 9) with actions (N, H, 3) m/s -> tips, targets (N, H, 3), rewards (N, H)."""
        tip, target, previous = belief[:, 0:3], belief[:, 3:6], belief[:, 6:9]
        tips, targets, rewards = [], [], []
        for k in range(actions.shape[1]):
            action = actions[:, k] / self.action_scale
            tip, target = self.dynamics(tip, target, action, previous)
            previous = action
            tips.append(tip)
            targets.append(target)
            rewards.append(self.reward(tip, target))
        return torch.stack(tips, 1), torch.stack(targets, 1), torch.stack(rewards, 1)

    def graph(self, kind: str, horizon: int | None = None) -> nn.Module:
        return {"task": _TaskGraph, "observe": _ObserveGraph}[kind](self) if kind != "imagine" else \
            _ImagineGraph(self, horizon)


class _TaskGraph(nn.Module):
    def __init__(self, model: PositionWorldModel):
        super().__init__()
        self.model = model

    def forward(self, frame):
        return self.model.task_vector(frame)


class _ObserveGraph(nn.Module):
    """(belief, state, action, image, joints, task) -> (belief, state); the state only keeps the RSSM's
    interface (zeros; the zero term keeps it a graph input, the exporter drops unused ones)."""

    def __init__(self, model: PositionWorldModel):
        super().__init__()
        self.model = model

    def forward(self, belief, state, action, image, joints, task):
        return self.model.observe(belief, action, image, joints, task), state * 0.0


class _ImagineGraph(nn.Module):
    def __init__(self, model: PositionWorldModel, horizon: int):
        super().__init__()
        self.model, self.horizon = model, horizon

    def forward(self, belief, state, actions, task):
        """The task is already in the belief (the located target); the zero term keeps it an input."""
        rewards = self.model.imagine(belief, actions[:, :self.horizon])[2]
        rewards = rewards + 0.0 * (task.sum(-1, keepdim=True) + state.sum(-1, keepdim=True))
        return rewards.sum(1), rewards


class PositionBackend:
    """The planning graphs on the torch model, for `LatentMPC` while training evaluates."""

    def __init__(self, model: PositionWorldModel):
        self.model = model
        self.belief_size, self.state_size = BELIEF_SIZE, STATE_SIZE


    @torch.no_grad()
    def task_vector(self, frame):
        return self.model.task_vector(frame_tensor(frame))[0].numpy()

    @torch.no_grad()
    def observe(self, belief, state, action, image, joints, task):
        f = torch.as_tensor
        b = self.model.observe(f(belief, dtype=torch.float32).reshape(1, BELIEF_SIZE),
                               f(action, dtype=torch.float32).reshape(1, ACTION_DIM), frame_tensor(image),
                               f(joints, dtype=torch.float32).reshape(1, JOINT_DIM),
                               f(task, dtype=torch.float32).reshape(1, -1))
        return b.numpy(), state

    @torch.no_grad()
    def returns(self, belief, state, actions, task):
        actions = torch.as_tensor(actions, dtype=torch.float32)
        rewards = self.model.imagine(torch.as_tensor(belief).expand(actions.shape[0], -1), actions)[2]
        return rewards.sum(1).numpy()
