"""How many runs to train as one pack on a device.

Packing pays while one run's step leaves the device idle: a small network over a small table
spends its step in per-operation overhead and half-used cores, and a pack fills them. Once one
run's step already fills the device, a pack is no faster than runs one after another (and holds
more memory). The measure of a step's size is rows x parameters (a multiply-add count, with the
transformer's rows counted per token). The thresholds come from docs/packing_speed.md: on the
2-core CPU, the p 47 quadratic MLP (8e7) gains from 16 members, the p 97 one (7e8) does not.
A GPU has room for many small runs; 64 is the size the packed loop is designed for there.
"""
from __future__ import annotations

import torch

from grokking.data import build_dataset
from grokking.models import Transformer, build_model

CPU_MAX_STEP_WORK = 2.5e8  # rows x parameters of one member's step above which a CPU pack loses
CPU_PACK_SIZE = 16
GPU_PACK_SIZE = 64


def step_work(cfg) -> float:
    """Rows x parameters of one training step of this run (its multiply-adds, roughly)."""
    data = build_dataset(cfg)
    with torch.random.fork_rng(devices=[]):  # building the model draws its initial weights
        model = build_model(cfg, data)
    rows = min(cfg.batch_size or len(data.train_idx), len(data.train_idx))
    if isinstance(model, Transformer):
        rows *= len(model.sequence)
    return float(rows * sum(p.numel() for p in model.parameters()))


def recommended_pack_size(cfg, device) -> int:
    """The number of runs shaped like ``cfg`` worth packing on ``device`` (1: do not pack)."""
    if torch.device(device).type != "cpu":
        return GPU_PACK_SIZE
    return CPU_PACK_SIZE if step_work(cfg) <= CPU_MAX_STEP_WORK else 1
