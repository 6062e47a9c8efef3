"""Rank of a layer's features: the numerical rank of their covariance (Fan, Pascanu & Jaggi 2024,
"Deep Grokking") and the effective rank of the centred features (Roy & Vetterli 2007).

Both come from one symmetric eigendecomposition of the float64 covariance: its eigenvalues are
the squared singular values of the centred features divided by n - 1.
"""
from __future__ import annotations

import torch


def covariance_spectrum(features: torch.Tensor) -> torch.Tensor:
    """Eigenvalues of the (units, units) covariance of (n, units) features, in float64."""
    cov = torch.cov(features.to(torch.float64).T)
    return torch.linalg.eigvalsh(cov.reshape(features.shape[1], features.shape[1]))


def numerical_rank(eigenvalues: torch.Tensor) -> torch.Tensor:
    """matrix_rank of the covariance with the default tolerance: |lambda| > max|lambda| * d * eps."""
    size = eigenvalues.abs()
    tol = size.max() * eigenvalues.numel() * torch.finfo(eigenvalues.dtype).eps
    return (size > tol).sum()


def effective_rank(eigenvalues: torch.Tensor) -> torch.Tensor:
    """exp of the entropy of the normalised singular values sigma_i / sum sigma of the centred
    features (sigma_i is proportional to sqrt(lambda_i)); 0 log 0 counts as 0."""
    sigma = eigenvalues.clamp(min=0).sqrt()
    weights = sigma / sigma.sum()
    return torch.exp(-torch.special.xlogy(weights, weights).sum())


def feature_ranks(features: dict[str, torch.Tensor], rows: torch.Tensor) -> dict:
    """feature_rank/<layer> and effective_rank/<layer> on the given rows of every layer."""
    out = {}
    for name, h in features.items():
        spectrum = covariance_spectrum(h[rows])  # constant features: rank 0, effective rank nan
        rank, erank = torch.stack([numerical_rank(spectrum).double(), effective_rank(spectrum)]).tolist()
        out.update({f"feature_rank/{name}": int(rank), f"effective_rank/{name}": erank})
    return out
