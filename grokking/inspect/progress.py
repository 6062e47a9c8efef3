"""How much of the logits the Fourier algorithm explains (Nanda et al. 2023, "Progress measures
for grokking via mechanistic interpretability", section 5.1): the coefficient of the logits over
the whole table on each frequency's "predicted logits" cos(w(a + b - c)), and what is left.

Restricted and excluded loss are in grokking.metrics.progress_measures; ``restricted_excluded``
below runs them on a model, as the training's metrics do.
"""
from __future__ import annotations

import torch

from grokking.metrics import MetricSuite, progress_problem
from grokking.training.evaluate import evaluate


def logit_cube(logits: torch.Tensor, inputs: torch.Tensor, p: int) -> torch.Tensor:
    """(p, p, classes): the logits of input (a, b) at [a, b]."""
    cube = logits.new_zeros(p, p, logits.shape[1])
    cube[inputs[:, 0], inputs[:, 1]] = logits
    return cube


def cos_coefficients(cube: torch.Tensor, p: int) -> dict:
    """The (p, p, p) logits L[a, b, c] on the unit-norm cubes C_k = cos(2 pi k (a + b - c)/p) / |.|:

    coefficients (K,) <L, C_k>, cos_sim (K,) <L, C_k> / |L|, and residual, |L - sum_k <L, C_k> C_k|
    / |L| (the cubes are orthogonal, so residual^2 = 1 - sum cos_sim^2). A model that has grokked
    (a+b) mod p puts most of the logits' norm on its key frequencies' cubes.

    <L, cos(w(a+b-c))> is the real part of L's 3-D DFT at (p-k, p-k, k), and |cos cube|^2 = p^3 / 2.
    """
    cube = cube.double()
    spectrum = torch.fft.fftn(cube)
    k = torch.arange(1, (p - 1) // 2 + 1)
    coefficients = spectrum[p - k, p - k, k].real / (p**3 / 2) ** 0.5
    norm = cube.norm().clamp(min=torch.finfo(cube.dtype).tiny)
    cos_sim = coefficients / norm
    return {"coefficients": coefficients, "cos_sim": cos_sim,
            "residual": float((1 - cos_sim.square().sum()).clamp(min=0).sqrt())}


@torch.no_grad()
def model_cos_coefficients(model, inputs: torch.Tensor, p: int) -> dict:
    """``cos_coefficients`` of a model's logits over the (N = p^2, 2) pairs ``inputs``."""
    return cos_coefficients(logit_cube(model(inputs), inputs, p), p)


@torch.no_grad()
def restricted_excluded(cfg, model, data, key_freqs: list[int] | None = None) -> dict:
    """restricted_loss, excluded_loss and key_freqs of the model as the training's metrics
    compute them (grokking.metrics.progress_measures); ``key_freqs`` fixes the frequencies (Nanda
    et al. use the final model's for every checkpoint), else the model's own. Where they do not
    apply, {"skipped": why}."""
    why = progress_problem(cfg, model, data)
    if why:
        return {"skipped": why}
    suite = MetricSuite(cfg, model, data)
    suite.fixed_key_freqs = key_freqs
    _, logits, features = evaluate(model, data, cfg, features=True)
    return suite.progress_measures(logits, features)
