"""Fourier structure of how a network reads token values over Z_p.

The basis is the real, orthonormal Fourier basis over Z_p (odd p, K = (p-1)/2 frequencies): row 0
is the constant 1/sqrt(p), rows 2k-1 and 2k are sqrt(2/p) cos(2 pi k a / p) and sqrt(2/p) sin(...).
With it a pure cosine of frequency k puts all its power on k (a complex DFT would split it over
+k and -k), so a one-frequency neuron has an inverse participation ratio of exactly 1.
"""
from __future__ import annotations

import math

import torch


def fourier_basis(p: int, dtype=torch.float64, device=None) -> torch.Tensor:
    """The (p, p) real orthonormal Fourier basis over Z_p, one basis vector per row (p odd)."""
    if p < 3 or p % 2 == 0:
        raise ValueError(f"the real Fourier basis here needs an odd p >= 3, got {p}")
    a = torch.arange(p, dtype=torch.float64)
    k = torch.arange(1, (p - 1) // 2 + 1, dtype=torch.float64)
    angles = 2 * math.pi * k[:, None] * a[None, :] / p
    basis = torch.empty(p, p, dtype=torch.float64)
    basis[0] = 1 / math.sqrt(p)
    basis[1::2] = torch.cos(angles) * math.sqrt(2 / p)
    basis[2::2] = torch.sin(angles) * math.sqrt(2 / p)
    return basis.to(dtype=dtype, device=device)


def fourier_power(token_map: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """Per-unit power at each frequency k = 1..K of a token-indexed (p, units) matrix.

    P[j, k-1] = F[cos_k, j]^2 + F[sin_k, j]^2 with F = basis @ token_map; the constant row is
    dropped. A unit whose power is at rounding level of its constant component (a constant unit)
    gets exactly zero power. Returns (units, K) in the basis' dtype.
    """
    squares = (basis @ token_map.to(basis.dtype)).square()
    power = squares[1:].view(-1, 2, squares.shape[1]).sum(dim=1)
    rounding = squares[0] * (basis.shape[0] * torch.finfo(basis.dtype).eps)
    return (power * (power.sum(dim=0) > rounding)).T


def unit_ipr(power: torch.Tensor) -> torch.Tensor:
    """Inverse participation ratio of each unit's normalised spectrum, sum_k P^2 / (sum_k P)^2
    (He et al. 2025; Gromov 2023; Doshi, He & Gromov 2023); nan for a unit with no power."""
    return power.square().sum(dim=1) / power.sum(dim=1).square()


def mean_ipr(power: torch.Tensor) -> float | None:
    """The model's Fourier IPR: the mean of unit_ipr over the units that have power (units of
    every operand's token map together). None when no unit has any power."""
    value = unit_ipr(power).nanmean().item()
    return None if math.isnan(value) else value


def top_frequencies(power: torch.Tensor, n: int) -> list[int]:
    """The n frequencies (1..K) holding the most power summed over units."""
    total = power.sum(dim=0)
    return [int(k) + 1 for k in torch.topk(total, min(n, total.numel())).indices.tolist()]
