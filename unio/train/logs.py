"""What a run writes as it goes: each task's loss since the last log line, and metrics.jsonl."""
from __future__ import annotations

import json
from pathlib import Path

import torch


class TaskLosses:
    """Each task's mean token cross-entropy over the steps since the last `pop()`: the mixture's
    batches alternate between tasks, so the total loss alone cannot show which task is learning."""

    def __init__(self, names: list):
        self.names = names
        self.sums, self.counts = torch.zeros(len(names), dtype=torch.float64), torch.zeros(len(names))

    def add(self, per_example, task_index) -> None:
        """`per_example` (B,): each example's mean token cross-entropy (unio.train.balance.example_losses)."""
        self.sums.index_add_(0, task_index.cpu(), per_example.double().cpu())
        self.counts.index_add_(0, task_index.cpu(), torch.ones(len(task_index)))

    def pop(self) -> dict:
        means = {n: round(float(s / c), 4) for n, s, c in zip(self.names, self.sums, self.counts) if c > 0}
        self.sums.zero_()
        self.counts.zero_()
        return means


class MetricsLog:
    """metrics.jsonl, one JSON row a line; only rank 0 writes."""

    def __init__(self, path: Path, rank: int):
        self.file = open(path, "a") if rank == 0 else None

    def write(self, row: dict) -> None:
        if self.file:
            self.file.write(json.dumps(row) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file:
            self.file.close()
