"""The mechanism of a one-hidden-layer MLP on modular addition (He, Wang, Chen & Yang 2025, "On the
mechanism and dynamics of modular addition: Fourier features, lottery ticket, and grokking").

After training, neuron j reads operand a as cos(w a + phi_a), operand b as cos(w b + phi_b), and
writes cos(w c + psi) to the logits, one frequency w = 2 pi k / p per neuron (IPR near 1), with
psi = phi_a + phi_b: the product term cos(w(a+b) + phi_a + phi_b) of the activation then adds
cos(w(a + b - c)) to the logits whatever the phases. With one embedding for both operands
(phi_a = phi_b = phi) that is He et al.'s phase alignment psi = 2 phi. Which frequency a neuron
ends with is decided at initialisation (the lottery ticket): mostly the one it started strongest in.

The pure functions take token maps (p, units) per operand and the readout (classes, units).
"""
from __future__ import annotations

import torch

from grokking.metrics.fourier import fourier_basis, fourier_power, unit_ipr
from grokking.models import MLP


def neuron_ipr(token_maps: list[torch.Tensor], p: int) -> torch.Tensor:
    """(units,) each neuron's Fourier IPR (grokking.metrics.fourier.unit_ipr), averaged over the
    operands; 1 for one frequency, about 2/(K+1) for random weights."""
    basis = fourier_basis(p)
    return torch.stack([unit_ipr(fourier_power(m.detach(), basis)) for m in token_maps]).mean(dim=0)


def dominant_frequencies(token_maps: list[torch.Tensor], p: int) -> torch.Tensor:
    """(units,) each neuron's strongest frequency 1..K in its input weights (operands summed)."""
    basis = fourier_basis(p)
    return sum(fourier_power(m.detach(), basis) for m in token_maps).argmax(dim=1) + 1


def phases(weights: torch.Tensor, p: int, freq: torch.Tensor) -> torch.Tensor:
    """(units,) phase phi of each column of a (p, units) map at its frequency ``freq``, reading
    the column as r cos(2 pi k x / p + phi)."""
    coeffs = fourier_basis(p) @ weights.detach().double()  # (p, units)
    units = torch.arange(weights.shape[1])
    return torch.atan2(-coeffs[2 * freq, units], coeffs[2 * freq - 1, units])


def phase_alignment(token_maps: list[torch.Tensor], readout: torch.Tensor, p: int) -> dict:
    """Per neuron, at its dominant frequency: freq, the input phases phi (operands, units), the
    output phase psi, and misalignment |sin(psi - sum of phi)| (He et al.'s |sin(psi - 2 phi)|):
    0 when aligned (or exactly opposite, a sign the amplitudes absorb), about 2/pi on average for
    random weights. ``readout`` is (p classes, units)."""
    freq = dominant_frequencies(token_maps, p)
    phi = torch.stack([phases(m, p, freq) for m in token_maps])
    psi = phases(readout, p, freq)
    return {"freq": freq, "phi": phi, "psi": psi, "misalignment": torch.sin(psi - phi.sum(dim=0)).abs()}


def lottery(initial: list[torch.Tensor], final: list[torch.Tensor], p: int) -> dict:
    """The lottery ticket view: each neuron's dominant frequency at initialisation and at the end
    (units,), the rank (1 = strongest) the final frequency had in the neuron's initial spectrum,
    and ``kept``, the share of neurons whose final frequency was already their strongest."""
    basis = fourier_basis(p)
    start = sum(fourier_power(m.detach(), basis) for m in initial)
    init_freq, final_freq = start.argmax(dim=1) + 1, dominant_frequencies(final, p)
    start_of_final = start.gather(1, (final_freq - 1)[:, None])
    rank = (start > start_of_final).sum(dim=1) + 1
    return {"init_freq": init_freq, "final_freq": final_freq, "init_rank": rank,
            "kept": float((rank == 1).double().mean())}


def mlp_maps(model) -> tuple[list[torch.Tensor], torch.Tensor] | str:
    """(token maps per operand, readout (classes, units)) of a one-hidden-layer MLP reading
    tokens, or why the model has no such maps."""
    if not isinstance(model, MLP) or model.embedding is None:
        return "needs model=mlp reading tokens"
    if len(model.hidden) != int(model.embedding == "learned"):
        return "needs one hidden layer (model.depth=1): the readout must read the token-reading neurons"
    return model.token_maps(), model.readout.weight

