"""Restricted and excluded loss of a one-layer transformer on (a + b) mod p, and its key
frequencies (Nanda, Chan, Lieberum, Smith & Steinhardt 2023, "Progress measures for grokking via
mechanistic interpretability").

N is the (pairs, neurons) table of MLP activations at the readout position over the whole table;
u_k are the unit vectors cos(2 pi k (a+b)/p) and sin(2 pi k (a+b)/p) over the pairs.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from grokking.metrics.fourier import fourier_basis


def variance_explained(acts: torch.Tensor, inputs: torch.Tensor, p: int) -> torch.Tensor:
    """(neurons, K): the share of each neuron's variance over the p x p table that lies in the
    block {1, cos k, sin k} x {1, cos k, sin k} of the 2-D real Fourier basis over (a, b)."""
    grid = acts.new_zeros(p, p, acts.shape[1])
    grid[inputs[:, 0], inputs[:, 1]] = acts
    grid = grid - grid.mean(dim=(0, 1))
    basis = fourier_basis(p, acts.dtype, acts.device)
    power = torch.einsum("ia,abn,jb->ijn", basis, grid, basis).pow(2)
    k = (p - 1) // 2
    with_constant = power[0, 1:].reshape(k, 2, -1).sum(1) + power[1:, 0].reshape(k, 2, -1).sum(1)
    pure = power[1:, 1:].reshape(k, 2, k, 2, -1).sum(dim=(1, 3)).diagonal(dim1=0, dim2=1).T
    return ((with_constant + pure) / power.sum(dim=(0, 1)).clamp(min=torch.finfo(power.dtype).tiny)).T


def key_frequencies(acts: torch.Tensor, inputs: torch.Tensor, p: int, min_fve: float, min_share: float) -> list[int]:
    """Frequencies chosen by many neurons: each neuron votes for the frequency whose block
    explains most of its variance, if that share is at least ``min_fve``; a frequency is key when
    it gets the votes of at least ``min_share`` of all neurons."""
    fve = variance_explained(acts.float(), inputs, p)
    best_share, best = fve.max(dim=1)
    votes = torch.bincount(best[best_share >= min_fve], minlength=fve.shape[1])
    return [int(k) + 1 for k in torch.nonzero(votes >= min_share * acts.shape[1]).flatten().tolist()]


def sum_directions(inputs: torch.Tensor, p: int, freqs: list[int]) -> torch.Tensor:
    """(2 |freqs|, pairs): the unit vectors cos and sin of 2 pi k (a+b)/p over the table's pairs."""
    total = (inputs[:, 0] + inputs[:, 1]).to(torch.float64)
    k = torch.tensor(freqs, dtype=torch.float64, device=inputs.device)[:, None]
    angles = 2 * math.pi * k * total / p
    waves = torch.cat([torch.cos(angles), torch.sin(angles)])
    return waves / waves.norm(dim=1, keepdim=True)


def restricted_excluded(acts: torch.Tensor, logits: torch.Tensor, neuron_to_logit: torch.Tensor,
                        inputs: torch.Tensor, labels: torch.Tensor, train_idx: torch.Tensor,
                        test_idx: torch.Tensor, p: int, freqs: list[int]) -> dict:
    """restricted_loss (test split) and excluded_loss (train split), cross-entropy in float64.

    Restricted logits: the mean logits plus the neurons' key-frequency components through
    W_out W_U (the mean activations and every path that bypasses the neurons are replaced by
    their mean). Excluded logits: the full logits minus those components.
    """
    acts = acts.to(torch.float64)
    if freqs:
        waves = sum_directions(inputs, p, freqs)
        kept = waves.T @ (waves @ acts)
    else:
        kept = torch.zeros_like(acts)
    through = kept @ neuron_to_logit.to(torch.float64)
    logits = logits.to(torch.float64)
    restricted = logits.mean(dim=0) + through
    excluded = logits - through
    losses = torch.stack([F.cross_entropy(restricted[test_idx], labels[test_idx]),
                          F.cross_entropy(excluded[train_idx], labels[train_idx])]).tolist()
    return {"restricted_loss": losses[0], "excluded_loss": losses[1]}
