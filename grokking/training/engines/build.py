"""A run's data, model and minibatches, built the same way whichever engine trains it."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import nn

from grokking.data import Dataset, build_dataset
from grokking.models import build_model
from grokking.optim import build_grad_filter, build_optimizer
from grokking.training.batches import Batches, seeded_batches
from grokking.training.weights import load_weights


@dataclass
class Member:
    """One run's built parts, on the device."""

    cfg: DictConfig
    data: Dataset
    model: nn.Module
    batches: Batches


def build_member(cfg: DictConfig, device, fresh: bool) -> Member:
    """Data and split, then ``torch.manual_seed(seed)``, the model, ``init_from`` (a ``fresh``
    run only: a continued one has its weights in its checkpoint), and seeded minibatches. The
    optimizer and filter are built once here too, for their checks of the values (lr, wd, ...).
    Raises ConfigError for a value of this run's that cannot be built."""
    data = build_dataset(cfg).to(device)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data)
    if cfg.init_from and fresh:
        load_weights(model, cfg.init_from)
    model.to(device)
    build_optimizer(cfg.optimizer, model.parameters())
    build_grad_filter(cfg.grokfast, model.parameters())
    return Member(cfg, data, model, seeded_batches(cfg, len(data.train_idx), device))
