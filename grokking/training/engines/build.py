"""A run's data, model and minibatches, built the same way whichever engine trains it."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import nn

from grokking.data import Dataset, build_dataset
from grokking.errors import ConfigError
from grokking.record import warn
from grokking.models import build_model
from grokking.optim import build_grad_filter, build_optimizer
from grokking.training.batches import Batches, seeded_batches
from grokking.training.loss import check_loss
from grokking.training.weights import load_weights


@dataclass
class Member:
    """One run's built parts, on the device."""

    cfg: DictConfig
    data: Dataset
    model: nn.Module
    batches: Batches


def initial_model(cfg: DictConfig, data: Dataset, init_from: bool = True) -> nn.Module:
    """The model a fresh run starts from: ``torch.manual_seed(seed)``, the model, then (with
    ``init_from``) the weights of ``cfg.init_from`` where it is set; on the CPU."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data)
    if init_from and cfg.get("init_from"):
        load_weights(model, cfg.init_from)
    return model


def initial_weights(cfg: DictConfig, data: Dataset) -> dict[str, torch.Tensor] | None:
    """θ₀, the run's initial parameters by name on ``data``'s device, rebuilt as ``build_member``
    built them (so checkpoints need not carry them and a resumed run or a pack member logs what
    its uninterrupted solo run does), leaving the global RNG as it was; None, with a warning,
    when ``init_from``'s checkpoint is gone."""
    try:
        with torch.random.fork_rng(devices=[]):
            model = initial_model(cfg, data)
    except ConfigError as e:
        warn(f"no weight_change: the initial weights cannot be rebuilt ({e})")
        return None
    return {name: param.detach().to(data.labels.device) for name, param in model.named_parameters()}


def build_member(cfg: DictConfig, device, fresh: bool) -> Member:
    """Data and split, then the initial model (``init_from`` only for a ``fresh`` run: a continued
    one has its weights in its checkpoint), and seeded minibatches. The loss, optimizer and filter
    are checked here too (lr, wd, ...). Raises ConfigError for a value of this run's that cannot
    be built."""
    data = build_dataset(cfg).to(device)
    model = initial_model(cfg, data, init_from=fresh).to(device)
    check_loss(str(cfg.loss), str(cfg.loss_dtype))
    build_optimizer(cfg.optimizer, model.parameters())
    build_grad_filter(cfg.grokfast, model.parameters())
    return Member(cfg, data, model, seeded_batches(cfg, len(data.train_idx), device))
