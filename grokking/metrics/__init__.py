"""Metrics computed at evaluation time from the evaluation's own forward pass."""
from __future__ import annotations

import torch


class MetricSuite:
    """Called at each evaluation with the logits and intermediate features of all examples;
    returns extra keys for the metrics record."""

    def __init__(self, cfg, model, data):
        self.model = model

    @torch.no_grad()
    def __call__(self, step: int, logits: torch.Tensor, features: dict) -> dict:
        norm = torch.sqrt(sum(p.double().pow(2).sum() for p in self.model.parameters()))
        return {"weight_norm": norm.item()}

    @property
    def wants_features(self) -> bool:
        return False
