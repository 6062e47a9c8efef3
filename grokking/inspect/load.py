"""Models of a run read back from its checkpoints, for the analyses of this package.

A source is a run folder (its checkpoints/last.pt) or one checkpoint file (last.pt or a
snapshot step_XXXXXXX.pt); both hold the run's composed config and the model's weights.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from grokking.data import Dataset, build_dataset
from grokking.errors import ConfigError
from grokking.models import build_model
from grokking.training.engines import build


@dataclass
class Loaded:
    cfg: DictConfig
    model: nn.Module  # on the CPU, in eval mode
    data: Dataset  # on the CPU: the whole table, in the order the run evaluated it
    step: int


def checkpoint_path(source) -> Path:
    path = Path(source)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if not path.is_file():
        raise ConfigError(f"{source}: no checkpoint there (give a run folder or a checkpoints/*.pt file)")
    return path


def load_checkpoint(source) -> Loaded:
    """The model of a run folder or checkpoint file, with its config and data set."""
    state = torch.load(checkpoint_path(source), map_location="cpu", weights_only=False)
    cfg = OmegaConf.create(state["config"])
    data = build_dataset(cfg)
    model = build_model(cfg, data)
    model.load_state_dict(state["model"])
    return Loaded(cfg, model.eval(), data, state["step"])


def initial_model(cfg: DictConfig, data: Dataset) -> nn.Module:
    """The run's model at step 0, rebuilt as training built it (same seed, same init_from), since
    snapshots start at the first checkpoint_every."""
    return build.initial_model(cfg, data).eval()
