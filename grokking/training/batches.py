"""The order in which a run sees its training examples."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Batches:
    """Minibatch indices: a new permutation of the training set each epoch from a seeded CPU
    generator (the same batches on every device), moved to the device once per epoch. Its state
    travels in the checkpoint, so a resumed run draws the same batches."""

    n: int
    size: int
    device: torch.device
    generator: torch.Generator = field(default_factory=torch.Generator)
    order: torch.Tensor | None = None
    pos: int = 0

    @property
    def full(self) -> bool:
        """Every step sees the whole training set."""
        return self.size >= self.n

    def next(self) -> torch.Tensor:
        if self.order is None or self.pos >= self.n:
            self.order, self.pos = torch.randperm(self.n, generator=self.generator).to(self.device), 0
        batch = self.order[self.pos : self.pos + self.size]
        self.pos += self.size
        return batch

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": self.order, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order = None if state["order"] is None else state["order"].to(self.device)
        self.pos = state["pos"]


def seeded_batches(cfg, n_train: int, device) -> Batches:
    """A run's minibatches, seeded by its seed (full batch when ``batch_size`` is null)."""
    batches = Batches(n_train, cfg.batch_size or n_train, torch.device(device))
    batches.generator.manual_seed(cfg.seed)
    return batches
