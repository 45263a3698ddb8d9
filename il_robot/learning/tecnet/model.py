"""TecNet networks and losses (James, Bloesch & Davison, CoRL 2018).

An embedding net turns a demo (its first and last frames) into a unit-length task
embedding; the control net maps the current image, with the task's "sentence" tiled
over it, plus the robot state to an action. Both take pixels as float 0..255 NCHW
and scale them to [-1, 1] themselves, so the runtime only transposes camera frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from il_robot.learning.keypoints import spatial_softmax
from il_robot.policies.tecnet_state import layout_for, state_size

ACTION_DIM = 3      # tool-tip linear velocity, normalised by the caller
DEMO_CHANNELS = 6   # first and last RGB frames of a demo, stacked on channels


@dataclass
class ModelConfig:
    """Network sizes; defaults are the paper's."""
    image_size: int = 64
    embedding_size: int = 20
    conv_layers: int = 4
    conv_filters: int = 16
    conv_kernel: int = 5
    conv_stride: int = 2
    fc_layers: int = 3
    fc_units: int = 200
    tip_in_state: bool = False  # the control net's state ends with the tool-tip position (FK of q)
    joint_velocities_in_state: bool = True  # qd in the state; without it the policy cannot copy its own motion
    keypoint_layers: tuple[int, ...] = ()  # control net: spatial-softmax keypoints (x, y per filter) of these conv
                              # layers' outputs (1-based; 1 = 32x32, 2 = 16x16 for 64x64 images) join the features


def state_layout(cfg: ModelConfig) -> tuple[str, ...]:
    """q (qd) (tip): il_robot.policies.tecnet_state builds the vector in this order."""
    return layout_for(cfg.tip_in_state, cfg.joint_velocities_in_state)


def state_dim(cfg: ModelConfig) -> int:
    return state_size(state_layout(cfg))


def scale_pixels(x: torch.Tensor) -> torch.Tensor:
    """0..255 -> [-1, 1]; inside the model so that exported graphs take raw pixels."""
    return x * (1.0 / 127.5) - 1.0


def normalise(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1, eps=1e-8)


def sentence_from(embeddings: torch.Tensor) -> torch.Tensor:
    """Task sentence from support embeddings (..., S, D): the normalised mean."""
    return normalise(embeddings.mean(dim=-2))


class ConvEncoder(nn.Module):
    """Strided convs with layer norm (one-group GroupNorm: over channels and space) and ELU, flattened
    (plus, optionally, spatial-softmax keypoints of some layers)."""

    def __init__(self, in_channels: int, cfg: ModelConfig, keypoint_layers: tuple[int, ...] = ()):
        super().__init__()
        self.convs, self.norms = nn.ModuleList(), nn.ModuleList()
        channels, size, pad = in_channels, cfg.image_size, cfg.conv_kernel // 2
        for _ in range(cfg.conv_layers):
            self.convs.append(nn.Conv2d(channels, cfg.conv_filters, cfg.conv_kernel, cfg.conv_stride, pad))
            self.norms.append(nn.GroupNorm(1, cfg.conv_filters))
            channels = cfg.conv_filters
            size = (size + 2 * pad - cfg.conv_kernel) // cfg.conv_stride + 1
        keypoint_layers = tuple(sorted({int(k) for k in keypoint_layers}))
        if any(not 1 <= k <= cfg.conv_layers for k in keypoint_layers):
            raise ValueError(f"keypoint_layers {list(keypoint_layers)}: each must be in 1..{cfg.conv_layers}")
        self.keypoint_layers = keypoint_layers
        # Starts at gain e^1.5 ~ 4.5: sharp enough to localise, soft enough to pass gradients.
        self.keypoint_log_gain = nn.ParameterDict(
            {str(k): nn.Parameter(torch.full((cfg.conv_filters,), 1.5)) for k in keypoint_layers})
        self.out_features = channels * size * size + 2 * cfg.conv_filters * len(keypoint_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.after_first_conv(self.convs[0](x))

    def after_first_conv(self, h: torch.Tensor) -> torch.Tensor:
        """The rest of the stack, given the first conv's output (before its norm)."""
        keypoints = []
        for i, norm in enumerate(self.norms):
            if i:
                h = self.convs[i](h)
            h = norm(h)
            if i + 1 in self.keypoint_layers:
                keypoints.append(spatial_softmax(h, self.keypoint_log_gain[str(i + 1)]))
            h = F.elu(h)
        return torch.cat([h.flatten(1), *keypoints], dim=1)


def mlp(in_features: int, cfg: ModelConfig, out_features: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(cfg.fc_layers):
        layers += [nn.Linear(in_features, cfg.fc_units), nn.ELU()]
        in_features = cfg.fc_units
    return nn.Sequential(*layers, nn.Linear(in_features, out_features))


class EmbeddingNet(nn.Module):
    """frames (N, 6, H, W), 0..255 -> unit-length task embedding (N, D).

    The task is which object ended up at the goal: a few pixels that changed between the first
    and the last frame, next to an arm that moved a lot. The change (last - first) is fed as three
    more channels, so the first conv sees it directly; without it the embedding collapsed to one
    point (the rank loss stayed at its margin) on the 200-task set.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.encoder = ConvEncoder(DEMO_CHANNELS + 3, cfg)
        self.head = mlp(self.encoder.out_features, cfg, cfg.embedding_size)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = scale_pixels(frames)
        x = torch.cat([x, x[:, 3:6] - x[:, 0:3]], dim=1)
        return normalise(self.head(self.encoder(x)))


class ControlNet(nn.Module):
    """image (B, 3, H, W) 0..255, sentence, state (B, 14 or 17) normalised -> action (B, 3) normalised.

    The first conv reads the image with the sentence tiled over it as extra channels. A conv is
    linear in its input channels, so it is computed as conv(image) + conv(tiled sentence): in
    training, many images share a few sentences (`task_index` picks each image's row of
    `sentence`), and the sentence part is computed once per task instead of once per image.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.encoder = ConvEncoder(3 + cfg.embedding_size, cfg, tuple(cfg.keypoint_layers))
        self.head = mlp(self.encoder.out_features + state_dim(cfg), cfg, ACTION_DIM)

    def forward(self, image: torch.Tensor, sentence: torch.Tensor, state: torch.Tensor,
                task_index: torch.Tensor | None = None, repeats: int | None = None) -> torch.Tensor:
        """sentence: (B, D); or (T, D) with task_index (B,) in 0..T-1; or (T, D) with `repeats`, each
        sentence conditioning the next `repeats` images in order (B = T * repeats). Training uses
        `repeats`: a broadcast add, whose backward is a sum, where indexing's backward is a scatter
        that took a fifth of a training step."""
        conv = self.encoder.convs[0]
        x = scale_pixels(image)
        tiled = sentence[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        image_part = F.conv2d(x, conv.weight[:, :3], conv.bias, conv.stride, conv.padding)
        sentence_part = F.conv2d(tiled, conv.weight[:, 3:], None, conv.stride, conv.padding)
        if repeats is not None:
            grouped = image_part.view(sentence.shape[0], repeats, *image_part.shape[1:])
            first = (grouped + sentence_part[:, None]).flatten(0, 1)
        else:
            first = image_part + (sentence_part if task_index is None else sentence_part[task_index])
        features = self.encoder.after_first_conv(first)
        return self.head(torch.cat([features, state], dim=1))


class TecNet(nn.Module):
    """The pair trained together; exported as two ONNX graphs."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embedding = EmbeddingNet(cfg)
        self.control = ControlNet(cfg)


# -- losses ------------------------------------------------------------------------------------

def embedding_hinge_loss(query: torch.Tensor, sentences: torch.Tensor, margin: float,
                         own_task: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank loss: each query (N, Q, D) should match its own task's sentence better than any other
    task's among `sentences` (M, D) by `margin` (dot products of unit vectors). Returns (loss,
    accuracy), where accuracy is the fraction of queries whose best-scoring sentence is their own.
    `own_task` (N,): the row of each query task's sentence (default: rows 0..N-1, M = N); with several
    processes, the sentences are every process's and a process's queries are some of the tasks."""
    n_tasks = sentences.shape[0]
    if n_tasks < 2:
        raise ValueError("the embedding loss needs at least two tasks per batch (negatives)")
    scores = torch.einsum("nqd,md->nqm", query, sentences)            # (N, Q, M)
    if own_task is None:
        own_task = torch.arange(query.shape[0], device=scores.device)
    rows = own_task[:, None, None]
    own = scores.gather(2, rows.expand(-1, query.shape[1], 1))          # (N, Q, 1)
    violation = (margin - own + scores).clamp_min(0.0)
    others = torch.ones(query.shape[0], 1, n_tasks, dtype=torch.bool, device=scores.device).scatter_(2, rows, False)
    loss = (violation * others).sum() / (others.sum() * query.shape[1])
    accuracy = (scores.argmax(dim=-1) == own_task[:, None]).float().mean()
    return loss, accuracy


def control_loss(predicted: torch.Tensor, target: torch.Tensor, kind: str,
                 weight: torch.Tensor | None = None, total: torch.Tensor | None = None) -> torch.Tensor:
    """Mean error over samples; `weight` (broadcast over the leading axes of the action) weighs them.
    `total`: what the sum of errors (times weights) is divided by instead of the number of errors (the sum
    of weights): with several processes, the mean over processes of theirs, so that the mean of their
    losses is the loss of the whole batch."""
    if kind == "mse":
        error = (predicted - target).square()
    elif kind == "l1":
        error = (predicted - target).abs()
    else:
        raise ValueError(f"control loss must be 'mse' or 'l1', not {kind!r}")
    if weight is None:
        return error.mean() if total is None else error.sum() / total.clamp_min(1e-8)
    weight = weight.reshape(*weight.shape, *([1] * (error.dim() - weight.dim()))).expand_as(error)
    return (error * weight).sum() / (weight.sum() if total is None else total).clamp_min(1e-8)
