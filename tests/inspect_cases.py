"""Hand-built networks whose Fourier structure is known in closed form, for the inspect tests.

``fourier_mlp``: He et al. (2025)'s solution for (a + b) mod p in a one-hidden-layer quadratic
MLP. Neuron j has one frequency k_j and one phase phi_j: it reads a as cos(w a + phi_j), b as
cos(w b + phi_j) and writes cos(w c + 2 phi_j + shift) to class c. With ``shift`` = 0 (phase
aligned) the product term of (.)^2 sums to cos(w(a + b - c)) over a neuron's phases, so the
logits peak at c = a + b. The transformer of the same kind is tests.test_metrics_progress's.
"""
import math

import torch
from omegaconf import OmegaConf

from grokking.models import MLP
from tests.test_metrics_progress import addition_table, fourier_transformer  # noqa: F401  (shared cases)

PHASES = 6  # neurons per frequency; their phases 2 pi j / PHASES cancel the cos(w(a+b+c) + 4 phi) terms


def fourier_mlp(p: int, freqs, shift: float = 0.0) -> MLP:
    cfg = OmegaConf.create(dict(depth=1, width=PHASES * len(freqs), activation="quad", bias=False,
                                embedding="onehot", combine="sum", init="random", init_scale=1.0))
    model = MLP(cfg, p, p, 2)
    k = torch.tensor(freqs).repeat_interleave(PHASES).double()
    phi = (2 * math.pi * torch.arange(PHASES) / PHASES).repeat(len(freqs)).double()
    x = torch.arange(p, dtype=torch.float64)[:, None]
    angle = 2 * math.pi * k * x / p
    with torch.no_grad():
        model.token_weight.copy_(torch.cat([torch.cos(angle + phi)] * 2).float())
        model.readout.weight.copy_(torch.cos(angle + 2 * phi + shift).float())
    return model
