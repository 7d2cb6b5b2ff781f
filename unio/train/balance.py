"""How a batch's target tokens weigh in the loss.

`--loss-mean`: `token`, one mean over every target token of the batch (a 65-token depth map outweighs a
2-token answer 30 to 1), `task`, 4M's per-modality normalisation applied to tasks: the mean over each
task's tokens, then the mean over the tasks in the batch, or `sqrt`, between the two: each task's mean
weighs as the square root of its target tokens in the batch (its share under `token`, tempered as
temperature sampling tempers examples' shares; a task's sampling weight still counts).

`--task-weighting loss`: each task's tokens also weigh in proportion to the task's recent loss (an
exponential mean of its token cross-entropy), normalised to a mean of 1 over the mixture, so the gradient
is that of the sum of the tasks' squared losses: a task that has learned (a short answer at 0.3 nats) takes
less of AdamW's shared step from one still on its plateau (a referring box at 2 nats). Measured on refexp
beside vqa, it does not let refexp ground (docs/experiments.md): the shared step was not the cause.
"""
from __future__ import annotations

import torch

from unio.vocab import IGNORE

LOSS_MEANS = ("token", "task", "sqrt")
TASK_WEIGHTINGS = ("none", "loss")


def task_tokens(labels: torch.Tensor, task_index: torch.Tensor) -> tuple:
    """(valid (B, L) float, each row's task among the batch's tasks (B,), each task's target tokens)."""
    valid = (labels != IGNORE).float()
    tasks, inverse = task_index.to(labels.device).unique(return_inverse=True)
    return valid, inverse, torch.zeros(len(tasks), device=labels.device).index_add_(0, inverse, valid.sum(1))


def task_balanced_weights(labels: torch.Tensor, task_index: torch.Tensor) -> torch.Tensor:
    """(B, L) token weights summing to 1: each task of the batch 1/tasks, shared by its target tokens."""
    valid, inverse, tokens = task_tokens(labels, task_index)
    return valid / (tokens[inverse] * len(tokens)).clamp(min=1)[:, None]


def sqrt_weights(labels: torch.Tensor, task_index: torch.Tensor) -> torch.Tensor:
    """(B, L) token weights summing to 1: each task of the batch a share in proportion to the square root
    of its target tokens there, shared by those tokens."""
    valid, inverse, tokens = task_tokens(labels, task_index)
    share = tokens.sqrt() / tokens.sqrt().sum().clamp(min=1e-12)
    return valid * (share / tokens.clamp(min=1))[inverse][:, None]


def token_weights(labels: torch.Tensor, task_index: torch.Tensor, loss_mean: str) -> torch.Tensor:
    """(B, L) weights summing to 1 over the target tokens, as `loss_mean` says."""
    if loss_mean == "task":
        return task_balanced_weights(labels, task_index)
    if loss_mean == "sqrt":
        return sqrt_weights(labels, task_index)
    valid = (labels != IGNORE).float()
    return valid / valid.sum().clamp(min=1)


@torch.no_grad()
def example_losses(logits: torch.Tensor, labels: torch.Tensor, example_of: torch.Tensor | None = None,
                   examples: int | None = None) -> torch.Tensor:
    """(B,) each example's mean token cross-entropy, without a (B, L, V) output. Packed rows
    (unio.data.packing) say each token's example in `example_of` (-1: padding); there are `examples`."""
    picked = logits.gather(-1, labels.clamp(min=0)[..., None])[..., 0].float()
    token_loss = torch.logsumexp(logits.float(), -1) - picked
    valid = (labels != IGNORE).float()
    if example_of is None:
        return (token_loss * valid).sum(1) / valid.sum(1).clamp(min=1)
    index = example_of.clamp(min=0).flatten()
    sums = token_loss.new_zeros(examples).index_add_(0, index, (token_loss * valid).flatten())
    counts = valid.new_zeros(examples).index_add_(0, index, valid.flatten())
    return sums / counts.clamp(min=1)


class LossWeighting:
    """Task weights from each task's exponential mean loss (`decay` per batch it appears in), normalised
    to a mean of 1 under the mixture's sampling probabilities `probs`; 1 until a task has been seen."""

    def __init__(self, probs, decay: float = 0.9):
        self.probs = torch.as_tensor(probs, dtype=torch.float64)
        self.decay = decay
        self.mean = torch.zeros(len(self.probs), dtype=torch.float64)
        self.seen = torch.zeros(len(self.probs), dtype=torch.bool)

    def weights(self) -> torch.Tensor:
        """(tasks,) the current weights."""
        if not self.seen.any():
            return torch.ones(len(self.probs), dtype=torch.float64)
        level = (self.mean[self.seen] * self.probs[self.seen]).sum() / self.probs[self.seen].sum()
        return torch.where(self.seen, self.mean / level.clamp(min=1e-6), torch.ones_like(self.mean))

    def scale(self, weights: torch.Tensor, task_index: torch.Tensor) -> torch.Tensor:
        """Token weights (B, L) scaled by each example's task weight."""
        per_task = self.weights().to(weights.device, weights.dtype)
        return weights * per_task[task_index.to(weights.device)][:, None]

    def observe(self, losses: torch.Tensor, task_index: torch.Tensor) -> None:
        """Fold a batch's example losses (B,) into each of its tasks' means."""
        losses, task_index = losses.double().cpu(), task_index.cpu()
        for task in task_index.unique().tolist():
            loss = float(losses[task_index == task].mean())
            self.mean[task] = loss if not self.seen[task] else self.decay * self.mean[task] + (1 - self.decay) * loss
            self.seen[task] = True

    def state_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "seen": self.seen.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.mean = torch.tensor(state["mean"], dtype=torch.float64)
        self.seen = torch.tensor(state["seen"], dtype=torch.bool)
