"""The training loss of one example: cross-entropy, or MSE on one-hot targets (Omnigrok)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def per_example_loss(logits, labels, kind: str, dtype: str) -> torch.Tensor:
    """(rows,) losses, computed in ``dtype`` (``loss_dtype``; the model itself stays float32)."""
    logits = logits.to(getattr(torch, dtype))
    if kind == "ce":
        return F.cross_entropy(logits, labels, reduction="none")
    targets = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
    return (logits - targets).pow(2).mean(dim=-1)
