"""One TecNet optimiser step: the losses of a batch, in one process or spread over several (DDP).

With several processes (learning/distributed.py), each holds a part of the batch's tasks. The losses are
arranged so that the mean of the processes' losses is the loss of the whole batch in one process, and
DDP averages the gradients: one step on P processes with 1/P of the batch each moves the weights as one
step on one process with the whole batch (test/test_distributed_training.py). For that, a process ranks
its queries against every process's sentences (the negatives of the whole batch; gradients flow back to
the process that made each sentence), and each control loss divides by the batch's mean error count (or
weight) per process rather than its own.
"""

from __future__ import annotations

import torch
from torch import nn

from il_robot.learning.distributed import ONE, World
from il_robot.learning.tecnet.config import TecNetConfig
from il_robot.learning.tecnet.model import TecNet, control_loss, embedding_hinge_loss, sentence_from


def batch_losses(model: TecNet, batch: dict[str, torch.Tensor], cfg: TecNetConfig,
                 world: World = ONE) -> dict[str, torch.Tensor]:
    frames, images = batch["frames"], batch["images"]
    n, m, k = images.shape[:3]
    s = cfg.data.support
    embeddings = model.embedding(frames.flatten(0, 1)).view(n, m, -1)
    sentences = sentence_from(embeddings[:, :s])                                   # (N, D)
    own = torch.arange(n, device=images.device) + world.rank * n if world.distributed else None
    emb_loss, accuracy = embedding_hinge_loss(embeddings[:, s:], world.gather(sentences), cfg.loss.margin, own)
    predicted = model.control(images.flatten(0, 2), sentences, batch["state"].flatten(0, 2),
                              repeats=m * k).view(n, m, k, -1)
    target, weight = batch["action"], batch.get("control_weight")
    totals = _shared_totals(batch, s, world) if world.distributed else (None, None, None)
    support_loss = control_loss(predicted[:, :s], target[:, :s], cfg.loss.control_loss,
                                None if weight is None else weight[:, :s], totals[0])
    query_loss = control_loss(predicted[:, s:], target[:, s:], cfg.loss.control_loss,
                              None if weight is None else weight[:, s:], totals[1])
    total = (cfg.loss.embedding_weight * emb_loss + cfg.loss.support_control_weight * support_loss
             + cfg.loss.query_control_weight * query_loss)
    losses = {"support_control_loss": support_loss, "query_control_loss": query_loss}
    if "correction_images" in batch:      # states the learner reached, labelled by an expert or a person (DAgger)
        corrected = batch["correction_images"]         # (N', C, ...): C samples of each of N' tasks, in order
        predicted = model.control(corrected.flatten(0, 1), sentences.index_select(0, batch["correction_task"][:, 0]),
                                  batch["correction_state"].flatten(0, 1), repeats=corrected.shape[1])
        losses["correction_control_loss"] = control_loss(predicted, batch["correction_action"].flatten(0, 1),
                                                         cfg.loss.control_loss, total=totals[2])
        total = total + cfg.loss.correction_control_weight * losses["correction_control_loss"]
    return {"loss": total, "embedding_loss": emb_loss, **losses, "embedding_accuracy": accuracy}


def _shared_totals(batch: dict[str, torch.Tensor], support: int, world: World) -> torch.Tensor:
    """What the support, query and correction losses divide by on every process: the mean over processes
    of their summed sample weights (error counts), since a process's batch may weigh more or less than
    another's (operator skills, corrective episodes only some tasks have)."""
    action = batch["action"]
    per_demo = action.shape[2] * action.shape[3]                      # K samples x action dims
    weight = batch.get("control_weight")
    if weight is None:
        weight = torch.ones(action.shape[:2], device=action.device)
    corrections = batch["correction_action"].numel() if "correction_action" in batch else 0
    local = torch.stack([weight[:, :support].sum() * per_demo, weight[:, support:].sum() * per_demo,
                         torch.tensor(float(corrections), device=action.device)])
    return world.mean(local)


class TecNetLosses(nn.Module):
    """The model and its losses as one forward: what DistributedDataParallel wraps (it exchanges the
    gradients of what its forward computed, so the losses must be computed inside it)."""

    def __init__(self, model: TecNet, cfg: TecNetConfig, world: World = ONE):
        super().__init__()
        self.model, self.cfg, self.world = model, cfg, world

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return batch_losses(self.model, batch, self.cfg, self.world)


def make_optimizer(model: nn.Module, cfg: TecNetConfig) -> torch.optim.Optimizer:
    """Adam on every weight; `foreach` updates them all with one op each (15 % of a CPU step otherwise)."""
    return torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, foreach=True)


def optimiser_step(losses: nn.Module, optimizer: torch.optim.Optimizer, batch: dict[str, torch.Tensor],
                   grad_clip: float = 0.0) -> dict[str, torch.Tensor]:
    """One update of the weights `losses` (a TecNetLosses, DDP-wrapped under torchrun) trains from `batch`;
    returns the batch's figures."""
    figures = losses(batch)
    optimizer.zero_grad(set_to_none=True)
    figures["loss"].backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(losses.parameters(), grad_clip)
    optimizer.step()
    return figures
