"""Data sets as tensors on the training device, with a train/validation split.

A data set holds *every* example (for arithmetic: the whole operation table) plus the indices of
the training and validation examples, so that one forward pass over ``inputs`` evaluates both
splits at once. Tasks other than arithmetic register a builder in ``BUILDERS``.
"""
from __future__ import annotations

import numpy as np
import torch

from grokking.dataset import Dataset
from grokking.errors import ConfigError
from grokking.images import digits, mnist
from grokking.ops import make_table
from grokking.parity import sparse_parity



def split_indices(n_total: int, split_cfg) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle ``range(n_total)`` with the split's own seed and cut it into train and validation.

    ``split.n_train`` (an absolute count) wins over ``split.frac`` when set. The permutation uses
    NumPy's PCG64 seeded by ``split.seed`` alone, so the split is the same on every device and
    independent of the model's seed.
    """
    n_train = split_cfg.get("n_train")
    if n_train is None:
        n_train = max(1, int(round(split_cfg.frac * n_total)))
    elif not 1 <= n_train <= n_total:
        raise ConfigError(f"split.n_train={n_train} is out of range; allowed: 1 to {n_total} for this data set")
    order = np.random.default_rng(split_cfg.seed).permutation(n_total)
    return np.sort(order[:n_train]), np.sort(order[n_train:])


def arithmetic(cfg) -> Dataset:
    table = make_table(cfg.op, cfg.p)
    inputs = torch.from_numpy(table.operands)
    train, val = split_indices(len(table.labels), cfg.split)
    modulus = None if cfg.op.name.startswith("s5_") else table.n_values
    return Dataset(
        inputs=inputs,
        labels=torch.from_numpy(table.labels),
        train_idx=torch.from_numpy(train),
        val_idx=torch.from_numpy(val),
        n_classes=table.n_values,
        n_values=table.n_values,
        modulus=modulus,
    )


def parity(cfg) -> Dataset:
    """Sparse parity (grokking/parity.py): float 0/1 inputs, two classes, split by ``cfg.split``."""
    bits, labels, _ = sparse_parity(cfg.data)
    train, val = split_indices(len(labels), cfg.split)
    return Dataset(
        inputs=torch.from_numpy(bits.astype(np.float32)),
        labels=torch.from_numpy(labels),
        train_idx=torch.from_numpy(train),
        val_idx=torch.from_numpy(val),
        n_classes=2,
    )


BUILDERS = {"arithmetic": arithmetic, "mnist": mnist, "digits": digits, "parity": parity}


def build_dataset(cfg) -> Dataset:
    """The data set named by ``cfg.data.name``, on the CPU."""
    name = cfg.data.name
    if name not in BUILDERS:
        raise ConfigError(f"unknown data '{name}'; allowed: {', '.join(sorted(BUILDERS))}")
    return BUILDERS[name](cfg)
