"""Linear probe accuracy of a layer's features (Fan, Pascanu & Jaggi 2024, "Deep Grokking"):
a linear classifier fitted on the features of the training inputs, scored on held-out inputs.

The classifier is closed-form ridge regression onto one-hot targets in float64 (features centred
on their training mean, so the intercept is the mean target), predicting the argmax. A layer
whose features do not vary on the training inputs (dead units) predicts the majority class.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                   test_y: torch.Tensor, n_classes: int, ridge: float) -> float:
    """Held-out accuracy of ridge regression fitted on (train_x, train_y).

    The penalty is ``ridge`` times the mean diagonal of the Gram matrix, so it does not depend on
    the scale of the features.
    """
    x = train_x.to(torch.float64)
    mean = x.mean(dim=0)
    x = x - mean
    targets = F.one_hot(train_y, n_classes).to(torch.float64)
    target_mean = targets.mean(dim=0)
    gram = x.T @ x
    scale = gram.diagonal().mean()
    if scale > 0:
        eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        weights = torch.linalg.solve(gram + ridge * scale * eye, x.T @ (targets - target_mean))
    else:  # a dead layer (constant features): no penalty makes the solve regular; nothing to fit
        weights = torch.zeros(x.shape[1], n_classes, dtype=x.dtype, device=x.device)
    scores = (test_x.to(torch.float64) - mean) @ weights + target_mean
    return (scores.argmax(dim=1) == test_y).double().mean().item()


def probe_accuracies(features: dict[str, torch.Tensor], labels: torch.Tensor, train_idx: torch.Tensor,
                     val_idx: torch.Tensor, n_classes: int, ridge: float) -> dict:
    """probe_acc/<layer> for every layer."""
    return {
        f"probe_acc/{name}": probe_accuracy(h[train_idx], labels[train_idx], h[val_idx], labels[val_idx], n_classes, ridge)
        for name, h in features.items()
    }
