"""Where a run computes: the device named by ``device=`` and the determinism switches."""
from __future__ import annotations

import os

import torch

from grokking.errors import ConfigError


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but no CUDA device is visible; allowed here: auto, cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name} is not a device; allowed: auto, cpu, cuda, cuda:N") from None


def set_determinism(on: bool) -> None:
    """Same config, seed and device give the same numbers (deterministic cuBLAS needs the
    workspace setting before CUDA starts)."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch.backends.cudnn.benchmark = not on
