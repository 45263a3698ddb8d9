"""PlaNet world model (Hafner et al., ICML 2019): RSSM, conv encoder/decoder, task-conditioned reward.

Recurrent state-space model: a deterministic path h_t = GRU(h_{t-1}, [s_{t-1}, a_{t-1}]) and a
Gaussian stochastic state s_t with prior p(s_t | h_t) and posterior q(s_t | h_t, o_t). The
observation o_t is the 64x64 camera frame plus the joint state (q, qd); both are
reconstructed from (h_t, s_t), and the reward r(h_t, s_t, task) is predicted from the latent
state alone, so planning never decodes an image.

Task conditioning: which of the two objects to push is the task. A task vector is computed
from a demo's last frame (it shows the target at the goal and the distractor elsewhere): the
observation encoder's conv features of that frame through a small MLP (tanh). The posterior
and the reward model both get it, so the latent can hold the *target's* position rather than
"an object of some colour", and the dynamics stay task-free (physics does not know roles).

Position heads: tip, target and distractor positions are decoded from (h, s, task), on filtered
states and on states predicted open loop up to `overshooting` steps ahead (rewards too); the
image loss is dominated by the arm and the table, these terms make the latent, and its dynamics,
carry what the reward depends on. With reward_head "positions" the planner's reward is the known
reward of these decoded positions (exported in the imagine graph). A frame head finds the target
and distractor in one frame from the encoder's features and the task; with posterior_positions
the filter reads its estimate (exported in the observe graph).

Units at the boundary: images are float 0..255 NCHW, joints raw (rad, rad/s), actions m/s,
rewards in the reward's units; normalisation constants are buffers of the module, so the
exported graphs take and return the same units and the runtime only transposes frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from il_robot.learning.keypoints import spatial_softmax
from il_robot.robot.panda_like import N_JOINTS

ACTION_DIM = 3      # tool-tip linear velocity, m/s
JOINT_DIM = 2 * N_JOINTS   # q then qd
POSITION_DIM = 9    # tip, target, distractor (x, y, z), m: privileged, for the auxiliary loss only


@dataclass
class ModelConfig:
    """Sizes; defaults are the paper's (CPU configs shrink them in config/planet.yaml)."""
    image_size: int = 64
    conv_depth: int = 32        # channels of the first conv; 2x, 4x, 8x after (paper: 32)
    belief_size: int = 200      # GRU (deterministic) state
    state_size: int = 30        # stochastic state
    hidden_size: int = 200      # dense layers of the transition, posterior, reward, task head
    task_size: int = 32         # task vector fed to the posterior and the reward model
    min_std: float = 0.1        # floor of the prior and posterior standard deviations
    keypoint_layers: tuple[int, ...] = ()   # conv layers (1..4) whose spatial-softmax keypoints join the features
    reward_head: str = "learned"   # "learned": the reward MLP; "positions": the known reward of the decoded
                                   # tip and target positions (the position head, task-conditioned)
    posterior_positions: bool = False  # the posterior also reads the frame position head's estimate of where the
                                       # target and distractor are in this frame (detached: it stays a supervised
                                       # estimate), so the filter need not learn to find the objects itself


def scale_image(x: torch.Tensor) -> torch.Tensor:
    """0..255 -> [-0.5, 0.5] (the paper's range), inside the model so graphs take raw pixels."""
    return x * (1.0 / 255.0) - 0.5


class ConvEncoder(nn.Module):
    """Four 4x4 stride-2 convs with ReLU: 64 -> 31 -> 14 -> 6 -> 2, flattened (32 * depth features),
    plus the spatial-softmax keypoints (x, y per channel, learned sharpness) of `keypoint_layers`:
    the 2x2 last map holds where the small objects are only implicitly, keypoints of the 31x31 and
    14x14 maps give it as coordinates."""

    def __init__(self, depth: int, keypoint_layers: tuple[int, ...] = ()):
        super().__init__()
        chans = (depth, 2 * depth, 4 * depth, 8 * depth)
        self.convs = nn.ModuleList(nn.Conv2d(c_in, c_out, 4, 2) for c_in, c_out in zip((3, *chans[:3]), chans))
        self.keypoint_layers = tuple(sorted({int(k) for k in keypoint_layers}))
        if any(not 1 <= k <= len(chans) for k in self.keypoint_layers):
            raise ValueError(f"keypoint_layers {list(keypoint_layers)}: each must be in 1..{len(chans)}")
        self.keypoint_log_gain = nn.ParameterDict(
            {str(k): nn.Parameter(torch.full((chans[k - 1],), 1.5)) for k in self.keypoint_layers})
        self.out_features = 8 * depth * 2 * 2 + sum(2 * chans[k - 1] for k in self.keypoint_layers)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h = scale_image(image)
        keypoints = []
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i + 1 in self.keypoint_layers:
                keypoints.append(spatial_softmax(h, self.keypoint_log_gain[str(i + 1)]))
            h = F.relu(h)
        return torch.cat([h.flatten(1), *keypoints], dim=1)


class ConvDecoder(nn.Module):
    """Dense to 32*depth, then transposed convs 5, 5, 6, 6 (stride 2): 1 -> 5 -> 13 -> 30 -> 64."""

    def __init__(self, in_features: int, depth: int):
        super().__init__()
        self.dense = nn.Linear(in_features, 32 * depth)
        chans = (32 * depth, 4 * depth, 2 * depth, depth, 3)
        self.deconvs = nn.ModuleList(nn.ConvTranspose2d(chans[i], chans[i + 1], k, 2)
                                     for i, k in enumerate((5, 5, 6, 6)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dense(x)[:, :, None, None]
        for i, deconv in enumerate(self.deconvs):
            h = deconv(h)
            if i < len(self.deconvs) - 1:
                h = F.relu(h)
        return h        # mean image in [-0.5, 0.5] units


class GRUCell(nn.Module):
    """A plain GRU cell from Linear layers (exports to basic ONNX ops; same maths as nn.GRUCell)."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.inputs = nn.Linear(input_size, 3 * hidden_size)
        self.hidden = nn.Linear(hidden_size, 3 * hidden_size)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        xr, xz, xn = self.inputs(x).chunk(3, dim=-1)
        hr, hz, hn = self.hidden(h).chunk(3, dim=-1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h


def mlp(in_features: int, hidden: int, out_features: int, layers: int = 2) -> nn.Sequential:
    mods: list[nn.Module] = []
    for _ in range(layers):
        mods += [nn.Linear(in_features, hidden), nn.ReLU()]
        in_features = hidden
    return nn.Sequential(*mods, nn.Linear(in_features, out_features))


class Gaussian(nn.Module):
    """Dense -> ReLU -> (mean, softplus std + min_std)."""

    def __init__(self, in_features: int, hidden: int, size: int, min_std: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, 2 * size))
        self.min_std = min_std

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, raw = self.net(x).chunk(2, dim=-1)
        return mean, F.softplus(raw) + self.min_std


class PlaNet(nn.Module):
    kind = "rssm"

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.belief_size, self.state_size, self.task_size = cfg.belief_size, cfg.state_size, cfg.task_size
        if cfg.image_size != 64:
            raise ValueError("the conv encoder/decoder are built for 64x64 images")
        self.cfg = cfg
        d, s, b, hid = cfg.conv_depth, cfg.state_size, cfg.belief_size, cfg.hidden_size
        self.encoder = ConvEncoder(d, tuple(cfg.keypoint_layers))
        e = self.encoder.out_features
        self.embed_state_action = nn.Linear(s + ACTION_DIM, hid)
        self.gru = GRUCell(hid, b)
        self.prior = Gaussian(b, hid, s, cfg.min_std)
        frame_positions = POSITION_DIM - 3 if cfg.posterior_positions else 0
        self.posterior = Gaussian(b + e + JOINT_DIM + cfg.task_size + frame_positions, hid, s, cfg.min_std)
        self.decoder = ConvDecoder(b + s, d)
        self.joint_decoder = mlp(b + s, hid, JOINT_DIM)
        # Task-conditioned: the latent may hold both objects, the task says which one is the target.
        self.position_decoder = mlp(b + s + cfg.task_size, hid, POSITION_DIM)
        # Training only: target and distractor positions from one frame's features and the task, so the
        # encoder learns to find the objects directly, not only through the filter (which can lean on
        # "the tip is low, so it is pushing the target").
        self.frame_position_head = mlp(e + cfg.task_size, hid, POSITION_DIM - 3)
        self.reward_model = mlp(b + s + cfg.task_size, hid, 1)
        self.task_head = mlp(e, hid, cfg.task_size, layers=1)
        # Normalisation (set from the data before training, saved with the weights).
        self.register_buffer("joint_mean", torch.zeros(JOINT_DIM))
        self.register_buffer("joint_std", torch.ones(JOINT_DIM))
        self.register_buffer("action_scale", torch.ones(ACTION_DIM))   # m/s per unit: the action bound
        self.register_buffer("reward_mean", torch.zeros(()))
        self.register_buffer("reward_std", torch.ones(()))
        self.register_buffer("position_mean", torch.zeros(POSITION_DIM))
        self.register_buffer("position_std", torch.ones(POSITION_DIM))
        self.register_buffer("goal_xy", torch.zeros(2))               # m; for reward_head "positions"
        self.register_buffer("reward_weights", torch.tensor([1.0, 0.5]))   # goal, reach
        if cfg.reward_head not in ("learned", "positions"):
            raise ValueError(f"model.reward_head '{cfg.reward_head}': choose learned or positions")

    def set_normalisation(self, joint_mean, joint_std, action_bound: float, reward_mean: float,
                          reward_std: float, position_mean=None, position_std=None, goal_xy=None,
                          reward_weights=None) -> None:
        with torch.no_grad():
            if goal_xy is not None:
                self.goal_xy.copy_(torch.as_tensor(goal_xy, dtype=torch.float32))
            if reward_weights is not None:
                self.reward_weights.copy_(torch.as_tensor(reward_weights, dtype=torch.float32))
            if position_mean is not None:
                self.position_mean.copy_(torch.as_tensor(position_mean, dtype=torch.float32))
                self.position_std.copy_(torch.as_tensor(position_std, dtype=torch.float32))
            self.joint_mean.copy_(torch.as_tensor(joint_mean, dtype=torch.float32))
            self.joint_std.copy_(torch.as_tensor(joint_std, dtype=torch.float32))
            self.action_scale.fill_(float(action_bound))
            self.reward_mean.fill_(float(reward_mean))
            self.reward_std.fill_(float(reward_std))

    def graph(self, kind: str, horizon: int | None = None) -> nn.Module:
        """What planning needs, as a module with plain tensor inputs (the ONNX export; the torch backend)."""
        return {"task": TaskGraph, "observe": ObserveGraph}[kind](self) if kind != "imagine" else \
            ImagineGraph(self, horizon)

    # -- pieces --------------------------------------------------------------------------------------
    def norm_joints(self, joints: torch.Tensor) -> torch.Tensor:
        return (joints - self.joint_mean) / self.joint_std

    def transition(self, belief: torch.Tensor, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """h_t from h_{t-1}, s_{t-1} and a_{t-1} (m/s)."""
        x = F.relu(self.embed_state_action(torch.cat([state, action / self.action_scale], dim=-1)))
        return self.gru(x, belief)

    def posterior_from(self, belief: torch.Tensor, features: torch.Tensor, joints: torch.Tensor,
                       task: torch.Tensor):
        inputs = [belief, features, self.norm_joints(joints), task]
        if self.cfg.posterior_positions:
            inputs.append(self.frame_positions_norm(features, task).detach())
        return self.posterior(torch.cat(inputs, dim=-1))

    def frame_positions_norm(self, features: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """Target and distractor positions (..., 6) from one frame's encoder features and the task,
        normalised like the position targets."""
        return self.frame_position_head(torch.cat([features, task], dim=-1))

    def reward_norm(self, belief: torch.Tensor, state: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """Predicted reward, normalised by the data's reward mean/std (what the loss sees)."""
        return self.reward_model(torch.cat([belief, state, task], dim=-1)).squeeze(-1)

    def reward(self, belief: torch.Tensor, state: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """The reward the planner sums (m): the reward MLP's, or that of the decoded positions."""
        if self.cfg.reward_head == "positions":
            return self.position_reward(belief, state, task)
        return self.reward_norm(belief, state, task) * self.reward_std + self.reward_mean

    def positions_norm(self, belief: torch.Tensor, state: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """Tip, target, distractor positions (..., 9), normalised by the data's mean/std."""
        return self.position_decoder(torch.cat([belief, state, task], dim=-1))

    def positions(self, belief: torch.Tensor, state: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        return self.positions_norm(belief, state, task) * self.position_std + self.position_mean

    def position_reward(self, belief: torch.Tensor, state: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        """reward.reward on the decoded tip and target: the reward is known given the positions,
        so only where things are (and go) must be learned, and an imagined state cannot score well
        without the target being imagined near the goal."""
        p = self.positions(belief, state, task)
        tip, target = p[..., 0:3], p[..., 3:6]
        goal = torch.sqrt(((target[..., :2] - self.goal_xy) ** 2).sum(-1) + 1e-12)
        reach = torch.sqrt(((tip - target) ** 2).sum(-1) + 1e-12)
        return -(self.reward_weights[0] * goal + self.reward_weights[1] * reach)

    def task_vector(self, frame: torch.Tensor) -> torch.Tensor:
        """(N, task_size) from demo final frames (N, 3, 64, 64), 0..255."""
        return torch.tanh(self.task_head(self.encoder(frame)))

    def decode(self, belief: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(image mean in [-0.5, 0.5] NCHW, normalised joints)."""
        x = torch.cat([belief, state], dim=-1)
        return self.decoder(x), self.joint_decoder(x)

    def initial(self, batch: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.zeros(batch, self.cfg.belief_size, device=device),
                torch.zeros(batch, self.cfg.state_size, device=device))

    # -- sequences -----------------------------------------------------------------------------------
    def observe(self, images: torch.Tensor, joints: torch.Tensor, actions: torch.Tensor, task: torch.Tensor,
                sample: bool = True) -> dict[str, torch.Tensor]:
        """Filter a batch of chunks (B, L, ...) of one task each (task: (B, task_size)): actions[:, t] is
        the action that led to frame t.

        Returns (B, L, ...) beliefs, posterior states and both distributions' parameters."""
        b, n = images.shape[:2]
        features = self.encoder(images.flatten(0, 1)).view(b, n, -1)
        belief, state = self.initial(b, images.device)
        out: dict[str, list] = {k: [] for k in ("belief", "state", "prior_mean", "prior_std", "post_mean",
                                                 "post_std")}
        for t in range(n):
            belief = self.transition(belief, state, actions[:, t])
            prior_mean, prior_std = self.prior(belief)
            post_mean, post_std = self.posterior_from(belief, features[:, t], joints[:, t], task)
            state = post_mean + post_std * torch.randn_like(post_std) if sample else post_mean
            for k, v in (("belief", belief), ("state", state), ("prior_mean", prior_mean),
                         ("prior_std", prior_std), ("post_mean", post_mean), ("post_std", post_std)):
                out[k].append(v)
        return {**{k: torch.stack(v, dim=1) for k, v in out.items()}, "features": features}

    def imagine(self, belief: torch.Tensor, state: torch.Tensor, actions: torch.Tensor,
                task: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Open loop from (belief, state) with actions (N, H, 3) m/s through the prior means.

        Returns beliefs and states (N, H, ...), and rewards (N, H) when a task is given."""
        beliefs, states, rewards = [], [], []
        for k in range(actions.shape[1]):
            belief = self.transition(belief, state, actions[:, k])
            state, _ = self.prior(belief)
            beliefs.append(belief)
            states.append(state)
            if task is not None:
                rewards.append(self.reward(belief, state, task))
        out = {"belief": torch.stack(beliefs, 1), "state": torch.stack(states, 1)}
        if task is not None:
            out["reward"] = torch.stack(rewards, 1)
        return out


@dataclass
class LossConfig:
    free_nats: float = 3.0          # KL below this many nats per step is not penalised
    kl_weight: float = 1.0
    image_weight: float = 1.0
    joint_weight: float = 1.0
    reward_weight: float = 1.0      # on rewards normalised by the data's std
    position_weight: float = 1.0    # auxiliary: tip/target/distractor positions normalised by the data's std
    frame_position_weight: float = 0.0   # auxiliary: target/distractor positions from each frame's features alone
    overshooting: int = 0           # predict rewards and positions up to this many steps open loop (0 = off)
    overshooting_weight: float = 1.0


def kl_gaussian(mean_q, std_q, mean_p, std_p) -> torch.Tensor:
    """KL(q || p) of diagonal Gaussians, summed over the last dim."""
    var_ratio = (std_q / std_p) ** 2
    return 0.5 * (var_ratio + ((mean_q - mean_p) / std_p) ** 2 - 1 - torch.log(var_ratio)).sum(-1)


def frame_position_loss(model: PlaNet, features: torch.Tensor, task: torch.Tensor,
                        position_target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, prediction) of the frame head: target and distractor from each frame's features and the task,
    against position_target (N, 9) normalised like the heads' outputs (its tip columns are not used).
    The world model's frame term and the encoder pretraining both optimise this."""
    predicted = model.frame_positions_norm(features, task)
    return 0.5 * ((predicted - position_target[:, 3:]) ** 2).sum(-1).mean(), predicted


def overshooting_losses(model: PlaNet, post: dict[str, torch.Tensor], actions: torch.Tensor, task: torch.Tensor,
                        reward_target: torch.Tensor, position_target: torch.Tensor,
                        distance: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Reward and position losses of states predicted d = 1..distance steps open loop (prior means, as
    the planner imagines them) from every filtered state of the chunk, against the truth at t + d."""
    b, n = actions.shape[:2]
    belief, state = post["belief"], post["state"]
    reward_terms, position_terms = [], []
    for d in range(1, min(distance, n - 1) + 1):
        m = n - d                                 # starts t = 0 .. m-1, predicting frame t + d
        belief, state = belief[:, :m], state[:, :m]
        belief = model.transition(belief.reshape(b * m, -1), state.reshape(b * m, -1),
                                  actions[:, d:d + m].reshape(b * m, -1))
        state, _ = model.prior(belief)
        task_rows = task[:, None].expand(-1, m, -1).reshape(b * m, -1)
        predicted = model.reward_norm(belief, state, task_rows)
        reward_terms.append(0.5 * ((predicted - reward_target[:, d:d + m].reshape(-1)) ** 2))
        position_terms.append(0.5 * ((model.positions_norm(belief, state, task_rows)
                                      - position_target[:, d:d + m].reshape(b * m, -1)) ** 2).sum(-1))
        belief, state = belief.view(b, m, -1), state.view(b, m, -1)
    if not reward_terms:
        zero = actions.new_zeros(())
        return zero, zero
    return torch.cat(reward_terms).mean(), torch.cat(position_terms).mean()


def world_model_losses(model: PlaNet, batch: dict[str, torch.Tensor], cfg: LossConfig) -> dict[str, torch.Tensor]:
    """Negative ELBO of a batch of chunks (Gaussian likelihoods with unit variance, free nats on the KL),
    plus the auxiliary position terms and, with cfg.overshooting, open-loop reward/position terms.

    batch: image (B, L, 3, 64, 64) 0..255, joints (B, L, 14), action (B, L, 3) m/s, reward (B, L),
    position (B, L, 9) m, task_frame (B, 3, 64, 64)."""
    images = batch["image"]
    b, n = images.shape[:2]
    task = model.task_vector(batch["task_frame"])
    post = model.observe(images, batch["joints"], batch["action"], task)
    belief, state = post["belief"].flatten(0, 1), post["state"].flatten(0, 1)
    image_mean, joint_mean = model.decode(belief, state)
    image_loss = 0.5 * ((image_mean - scale_image(images.flatten(0, 1))) ** 2).sum((1, 2, 3)).mean()
    joint_loss = 0.5 * ((joint_mean - model.norm_joints(batch["joints"].flatten(0, 1))) ** 2).sum(1).mean()
    task_rows = task[:, None].expand(-1, n, -1).flatten(0, 1)
    reward_target = (batch["reward"] - model.reward_mean) / model.reward_std
    predicted = model.reward_norm(belief, state, task_rows)
    reward_loss = 0.5 * ((predicted - reward_target.flatten()) ** 2).mean()
    position_target = (batch["position"] - model.position_mean) / model.position_std
    position_pred = model.positions_norm(belief, state, task_rows)
    position_loss = 0.5 * ((position_pred - position_target.flatten(0, 1)) ** 2).sum(-1).mean()
    kl = kl_gaussian(post["post_mean"], post["post_std"], post["prior_mean"], post["prior_std"])
    kl_loss = kl.clamp_min(cfg.free_nats).mean()
    total = (cfg.image_weight * image_loss + cfg.joint_weight * joint_loss + cfg.reward_weight * reward_loss
             + cfg.position_weight * position_loss + cfg.kl_weight * kl_loss)
    out = {}
    if cfg.frame_position_weight > 0:
        frame_loss, _ = frame_position_loss(model, post["features"].flatten(0, 1), task_rows,
                                            position_target.flatten(0, 1))
        total = total + cfg.frame_position_weight * frame_loss
        out["frame_position_loss"] = frame_loss
    if cfg.overshooting > 0:
        over_reward, over_position = overshooting_losses(model, post, batch["action"], task, reward_target,
                                                         position_target, cfg.overshooting)
        total = total + cfg.overshooting_weight * (cfg.reward_weight * over_reward
                                                   + cfg.position_weight * over_position)
        out.update(overshoot_reward_loss=over_reward, overshoot_position_loss=over_position)
    with torch.no_grad():
        reward_rmse = torch.sqrt(((predicted - reward_target.flatten()) ** 2).mean()) * model.reward_std
        target_error = ((position_pred[:, 3:5] - position_target.flatten(0, 1)[:, 3:5]) * model.position_std[3:5]
                        ).norm(dim=-1).mean()
    return {"loss": total, "image_loss": image_loss, "joint_loss": joint_loss, "reward_loss": reward_loss,
            "position_loss": position_loss, "kl": kl.mean(), "reward_rmse": reward_rmse,
            "target_xy_error": target_error, **out}


# -- what planning needs, as modules with plain tensor inputs (exported to ONNX; the torch backend) --

class TaskGraph(nn.Module):
    """frame (N, 3, 64, 64) 0..255 -> task (N, task_size)."""

    def __init__(self, model: PlaNet):
        super().__init__()
        self.model = model

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        return self.model.task_vector(frame)


class ObserveGraph(nn.Module):
    """One filtering step: (h_{t-1}, s_{t-1}, a_{t-1} m/s, frame 0..255, joints raw, task) -> (h_t, posterior
    mean s_t)."""

    def __init__(self, model: PlaNet):
        super().__init__()
        self.model = model

    def forward(self, belief, state, action, image, joints, task):
        m = self.model
        belief = m.transition(belief, state, action)
        mean, _ = m.posterior_from(belief, m.encoder(image), joints, task)
        return belief, mean


class ImagineGraph(nn.Module):
    """J candidate sequences in one call: (h, s, actions (N, H, 3) m/s, task) -> (returns (N,), rewards (N, H)).

    Prior means (no sampling): planning is deterministic given the candidates."""

    def __init__(self, model: PlaNet, horizon: int):
        super().__init__()
        self.model, self.horizon = model, horizon

    def forward(self, belief, state, actions, task):
        rewards = self.model.imagine(belief, state, actions[:, :self.horizon], task)["reward"]
        return rewards.sum(1), rewards


def frame_tensor(frame) -> torch.Tensor:
    """One (H, W, 3) camera frame -> (1, 3, H, W) float 0..255, as the graphs take it."""
    return torch.as_tensor(frame, dtype=torch.float32).permute(2, 0, 1)[None].contiguous()


class TorchBackend:
    """The planning graphs on the torch model, for `LatentMPC` while training collects episodes. Numpy in and
    out; the tensors go to the model's device (a GPU when it trains there) and back."""

    def __init__(self, model: PlaNet):
        self.model = model
        self.device = next(model.parameters()).device
        self.belief_size, self.state_size = model.cfg.belief_size, model.cfg.state_size
        self._observe, self._task = ObserveGraph(model), TaskGraph(model)

    def _tensor(self, x, dtype=None) -> torch.Tensor:
        return torch.as_tensor(x, dtype=dtype).to(self.device)

    @torch.no_grad()
    def task_vector(self, frame):
        return self._task(frame_tensor(frame).to(self.device))[0].cpu().numpy()

    @torch.no_grad()
    def observe(self, belief, state, action, image, joints, task):
        f = self._tensor
        b, s = self._observe(f(belief), f(state), f(action, torch.float32).reshape(1, ACTION_DIM),
                             frame_tensor(image).to(self.device), f(joints, torch.float32).reshape(1, JOINT_DIM),
                             f(task, torch.float32).reshape(1, -1))
        return b.cpu().numpy(), s.cpu().numpy()

    @torch.no_grad()
    def returns(self, belief, state, actions, task):
        actions = self._tensor(actions, torch.float32)
        n = actions.shape[0]
        rewards = self.model.imagine(self._tensor(belief).expand(n, -1), self._tensor(state).expand(n, -1),
                                     actions, self._tensor(task, torch.float32).reshape(1, -1).expand(n, -1))
        return rewards["reward"].sum(1).cpu().numpy()
