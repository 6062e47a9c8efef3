"""``Dataset``: every example of a task as tensors, with the indices of its two splits."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Dataset:
    inputs: torch.Tensor  # (N, 2) token ids for arithmetic, (N, D) floats for vector tasks
    labels: torch.Tensor  # (N,) class ids in [0, n_classes)
    train_idx: torch.Tensor  # (n_train,) indices into inputs
    val_idx: torch.Tensor  # (n_val,)
    n_classes: int
    n_values: int | None = None  # number of token values (token tasks only)
    modulus: int | None = None  # p for modular ops, where Fourier metrics make sense

    def to(self, device) -> "Dataset":
        fields = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key in ("inputs", "labels", "train_idx", "val_idx"):
            fields[key] = fields[key].to(device)
        return Dataset(**fields)
