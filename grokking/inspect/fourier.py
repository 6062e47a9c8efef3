"""Fourier views of how a network embeds the token values of Z_p.

Every function takes a (p, dims) token map (a transformer's W_E value rows, or an MLP's per-operand
first-layer weights; see ``embedding``) and works in the one real Fourier basis of
``grokking.metrics.fourier`` (constant row dropped). Nanda et al. (2023) read the trained
embedding as a few frequencies' cos/sin pairs; Liu et al. (2022) and the seed dashboard plot each
such pair as a circle of the p tokens.
"""
from __future__ import annotations

import math

import torch

from grokking.models import embedding
from grokking.metrics.fourier import fourier_basis, fourier_power


def spectrum(token_map: torch.Tensor, p: int, n_top: int = 3, key_ratio: float = 3.0) -> dict:
    """The embedding's power per frequency k = 1..K (squared norm of its cos_k and sin_k rows in
    the Fourier basis, summed over dims; Nanda et al. 2023), as

    power (K,), share (K,) of the total, ranked (frequencies by power, strongest first),
    top_share (share of the n_top strongest: the seed's "spectrum concentration"; about n_top/K
    for random weights) and key_freqs (the frequencies with at least ``key_ratio`` times the
    uniform share 1/K, by power)."""
    power = fourier_power(token_map, fourier_basis(p)).sum(dim=0)
    share = power / power.sum().clamp(min=torch.finfo(power.dtype).tiny)
    ranked = (torch.argsort(share, descending=True) + 1).tolist()
    key = [k for k in ranked if share[k - 1] >= key_ratio / len(share)]
    return {"power": power, "share": share, "ranked": ranked,
            "top_share": float(share[[k - 1 for k in ranked[:n_top]]].sum()), "key_freqs": key}


def rotation_shares(points: torch.Tensor, p: int) -> torch.Tensor:
    """(K,) per frequency k, the share of the centred 2-D points' (p, 2) power in one rotation
    z_a = r exp(+-i(2 pi k a/p + c)): 1 for an exact circle traversed k steps at a time,
    (A+B)^2 / 2(A^2+B^2) for an ellipse of axes A, B, about 2/p for a random cloud. (The sums
    sum_a z_a exp(-+2 pi i k a/p) are the DFT of z at k and p-k.)"""
    z = torch.complex(points[:, 0].double(), points[:, 1].double())
    spectrum = torch.fft.fft(z - z.mean()).abs().square()
    k = torch.arange(1, (p - 1) // 2 + 1)
    total = spectrum.sum().clamp(min=torch.finfo(torch.float64).tiny)  # Parseval: p sum_a |z_a|^2
    return torch.maximum(spectrum[k], spectrum[p - k]) / total


def circle(token_map: torch.Tensor, p: int, k: int) -> dict:
    """The tokens in the plane of frequency k (the seed dashboard's embedding circle per key
    frequency; Nanda et al. 2023, Liu et al. 2022).

    The plane is spanned by the embedding's cos_k and sin_k coefficient vectors (Gram-Schmidt
    orthonormalised); ``points`` (p, 2) are the centred token vectors projected on it and
    ``roundness`` their rotation share at k (``rotation_shares``). The directions are fitted to the embedding, so a random
    (p, d) embedding also scores about d / (d + p) (near 1 once d >> p): judge structure by
    ``spectrum`` and ``principal_circle``, not by roundness alone. ``cos_corr`` and ``sin_corr``
    are the correlations over tokens between cos(2 pi k a/p) (sin) and the embedding read along
    its cos_k (sin_k) direction (the seed's "Fourier correlation"; same caveat).
    """
    centred = token_map.double() - token_map.double().mean(dim=0)
    coeffs = fourier_basis(p)[[2 * k - 1, 2 * k]] @ centred  # (2, dims): cos_k and sin_k directions
    norms = coeffs.norm(dim=1).clamp(min=torch.finfo(coeffs.dtype).tiny)
    u = coeffs[0] / norms[0]
    v = coeffs[1] - (coeffs[1] @ u) * u
    points = centred @ torch.stack([u, v / v.norm().clamp(min=torch.finfo(v.dtype).tiny)]).T
    along = (centred @ (coeffs / norms[:, None]).T).norm(dim=0).clamp(min=torch.finfo(coeffs.dtype).tiny)
    return {"k": k, "points": points, "roundness": float(rotation_shares(points, p)[k - 1]),
            "cos_corr": float(norms[0] / along[0]), "sin_corr": float(norms[1] / along[1])}


def principal_circle(token_map: torch.Tensor, p: int) -> dict:
    """The tokens on the embedding's two principal components (the seed dashboard's "top 2
    dimensions"), which no frequency chose: ``points`` (p, 2), ``explained`` (their share of the
    centred variance), ``k`` (the frequency whose rotation fits them best) and ``circularity``
    (its rotation share): 1 when the strongest structure is one circle, about 2 ln(K)/p for
    random weights of any width."""
    centred = token_map.double() - token_map.double().mean(dim=0)
    left, singular, _ = torch.linalg.svd(centred, full_matrices=False)
    points = left[:, :2] * singular[:2]
    fits = rotation_shares(points, p)
    explained = singular[:2].square().sum() / singular.square().sum().clamp(min=torch.finfo(singular.dtype).tiny)
    return {"points": points, "explained": float(explained), "k": int(fits.argmax()) + 1, "circularity": float(fits.max())}


def addition_theorem(p: int, k: int) -> dict:
    """The (p, p) grids over (a, b) of the identity the network implements for frequency k
    (Nanda et al. 2023): cos(wa)cos(wb), sin(wa)sin(wb), their difference, and cos(w(a+b)),
    which the difference equals; w = 2 pi k / p."""
    angle = 2 * math.pi * k * torch.arange(p, dtype=torch.float64) / p
    cos_cos = torch.outer(torch.cos(angle), torch.cos(angle))
    sin_sin = torch.outer(torch.sin(angle), torch.sin(angle))
    return {"cos_a_cos_b": cos_cos, "sin_a_sin_b": sin_sin, "difference": cos_cos - sin_sin,
            "cos_sum": torch.cos(angle[:, None] + angle[None, :])}


def sum_share(grid: torch.Tensor, p: int, k: int) -> torch.Tensor:
    """(units,) the share of each unit's centred variance over the (units, p, p) table of
    activations that lies on cos(w(a+b)) and sin(w(a+b)): the neurons that compute the
    addition theorem's output for frequency k score highest (exactly cos(w(a+b) + c): 1; a
    quadratic neuron (cos(wa + c) + cos(wb + c))^2: 0.4; random: about 2/p^2)."""
    angle = 2 * math.pi * k * torch.arange(p, dtype=torch.float64) / p
    total = angle[:, None] + angle[None, :]
    waves = torch.stack([torch.cos(total), torch.sin(total)]).reshape(2, -1)
    waves = waves / waves.norm(dim=1, keepdim=True)
    centred = grid.double().reshape(grid.shape[0], -1)
    centred = centred - centred.mean(dim=1, keepdim=True)
    return (centred @ waves.T).square().sum(dim=1) / centred.square().sum(dim=1).clamp(min=torch.finfo(torch.float64).tiny)


def model_spectrum(model, p: int) -> dict:
    """``spectrum`` of a model's token embedding (grokking.analyze.embedding: a transformer's W_E
    value rows, an MLP's first-layer token weights of every operand side by side)."""
    return spectrum(embedding(model).detach(), p)


def model_circles(model, p: int, freqs: list[int]) -> list[dict]:
    """``circle`` of a model's token embedding for each frequency in ``freqs``."""
    token_map = embedding(model).detach()
    return [circle(token_map, p, k) for k in freqs]


def model_principal_circle(model, p: int) -> dict:
    """``principal_circle`` of a model's token embedding."""
    return principal_circle(embedding(model).detach(), p)
