"""Lazy versus rich training (Kumar, Bordelon, Gershman & Pehlevan 2024, "Grokking as the
Transition from Lazy to Rich Training Dynamics", ICLR): a network first fits its training set with
the features it started with (lazy: the weights barely move, the kernel stays the initial one),
and generalises once it learns new features (rich). Two measures of that transition:

- how far the weights moved from their initialisation, relative to it, ``weight_change``;
- how well the features the readout reads line up with the labels, the centred kernel alignment
  (Cortes, Mohri & Rostamizadeh 2012; linear CKA as Kornblith et al. 2019 compute it) of the last
  hidden features with the one-hot labels, ``label_cka``; Kumar et al. follow the alignment of the
  network's kernel with the target the same way.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from grokking.metrics.norms import l2_norms


def weight_change(model: torch.nn.Module, initial: dict[str, torch.Tensor]) -> dict:
    """``weight_change`` = ‖θ − θ₀‖ / ‖θ₀‖ over all parameters, and ``weight_change/<group>`` per
    group of parameters (the groups of ``norm/<group>``); ``initial`` holds θ₀ by parameter
    name. None for a group that starts at zero (biases)."""
    named = [(name, param.detach()) for name, param in model.named_parameters()]
    moved = l2_norms([(name, param - initial[name]) for name, param in named], "weight_change")
    start = l2_norms([(name, initial[name]) for name, _ in named], "weight_change")
    return {key: value / start[key] if start[key] else None for key, value in moved.items()}


def label_cka(features: torch.Tensor, labels: torch.Tensor, n_classes: int) -> float | None:
    """Linear CKA of (n, units) features X with the one-hot labels Y, both centred over the n rows:

        CKA = ‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F),

    the cosine between the kernels X Xᵀ and Y Yᵀ. 1 when the features are an orthogonal
    transform of the centred one-hots up to scale, 0 when no class's mean differs. Gram
    matrices in float32 (the cost: n × units² products), sums in float64. None for constant
    features or a single class."""
    x = features.float()
    x = x - x.mean(dim=0)
    y = F.one_hot(labels, n_classes).float()
    y = y - y.mean(dim=0)
    gram_x = x.T @ x if x.shape[1] <= x.shape[0] else x @ x.T  # both have the same Frobenius norm
    cross, self_x, self_y = (torch.linalg.matrix_norm(m.double()) for m in (y.T @ x, gram_x, y.T @ y))
    denominator = (self_x * self_y).item()
    return (cross.square().item() / denominator) if denominator > 0 else None
