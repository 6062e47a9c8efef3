"""Fourier basis, spectra and IPR against closed-form answers (docs/metrics.md)."""
import math

import pytest
import torch

from grokking.metrics.fourier import fourier_basis, fourier_power, mean_ipr, top_frequencies, unit_ipr


def cosine_map(p: int, freqs: torch.Tensor, phases: torch.Tensor) -> torch.Tensor:
    """(p, units): unit j is cos(2 pi freqs[j] a / p + phases[j])."""
    a = torch.arange(p, dtype=torch.float64)[:, None]
    return torch.cos(2 * math.pi * freqs[None, :] * a / p + phases[None, :])


@pytest.mark.parametrize("p", [3, 5, 7, 47, 97, 113])
def test_basis_is_orthonormal(p):
    basis = fourier_basis(p)
    assert basis.shape == (p, p)
    torch.testing.assert_close(basis @ basis.T, torch.eye(p, dtype=torch.float64), atol=1e-12, rtol=0)
    torch.testing.assert_close(basis.T @ basis, torch.eye(p, dtype=torch.float64), atol=1e-12, rtol=0)


@pytest.mark.parametrize("p", [2, 10, 1])
def test_basis_refuses_even_or_tiny_p(p):
    with pytest.raises(ValueError):
        fourier_basis(p)


def test_rows_are_constant_then_cos_sin_pairs():
    p = 11
    basis = fourier_basis(p)
    a = torch.arange(p, dtype=torch.float64)
    torch.testing.assert_close(basis[0], torch.full((p,), 1 / math.sqrt(p), dtype=torch.float64))
    torch.testing.assert_close(basis[5], math.sqrt(2 / p) * torch.cos(2 * math.pi * 3 * a / p))
    torch.testing.assert_close(basis[6], math.sqrt(2 / p) * torch.sin(2 * math.pi * 3 * a / p))


def test_pure_frequency_neurons_have_ipr_one_and_power_at_their_frequency():
    p, units = 31, 200
    freqs = torch.randint(1, 16, (units,), generator=torch.Generator().manual_seed(0)).double()
    phases = torch.rand(units, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 * math.pi
    power = fourier_power(cosine_map(p, freqs, phases) + 3.0, fourier_basis(p))  # constant offset is dropped
    assert power.shape == (units, 15)
    assert torch.equal(power.argmax(dim=1) + 1, freqs.long())
    torch.testing.assert_close(unit_ipr(power), torch.ones(units, dtype=torch.float64))
    assert mean_ipr(power) == pytest.approx(1.0)


def test_even_spread_gives_one_over_k():
    p = 41
    k = (p - 1) // 2
    freqs = torch.arange(1, k + 1, dtype=torch.float64)
    token_map = cosine_map(p, freqs, torch.zeros(k, dtype=torch.float64)).sum(dim=1, keepdim=True)
    assert mean_ipr(fourier_power(token_map, fourier_basis(p))) == pytest.approx(1 / k)


@pytest.mark.parametrize("p", [23, 97])
def test_gaussian_weights_give_two_over_k_plus_one(p):
    k = (p - 1) // 2
    weights = torch.randn(p, 20000, generator=torch.Generator().manual_seed(p), dtype=torch.float64)
    assert mean_ipr(fourier_power(weights, fourier_basis(p))) == pytest.approx(2 / (k + 1), rel=0.03)


def test_silent_units_are_skipped():
    p = 7
    token_map = torch.zeros(p, 3, dtype=torch.float64)
    token_map[:, 0] = cosine_map(p, torch.tensor([2.0]), torch.zeros(1, dtype=torch.float64))[:, 0]
    token_map[:, 2] = 5.0  # constant: no power outside the dropped constant row
    power = fourier_power(token_map, fourier_basis(p))
    assert power[1:].abs().max() == 0
    assert mean_ipr(power) == pytest.approx(1.0)
    assert mean_ipr(fourier_power(torch.ones(p, 2), fourier_basis(p))) is None


def test_units_with_power_are_averaged():
    p = 13
    pure = cosine_map(p, torch.tensor([5.0, 2.0]), torch.zeros(2, dtype=torch.float64))
    spread = cosine_map(p, torch.arange(1.0, 7.0), torch.zeros(6, dtype=torch.float64)).sum(dim=1, keepdim=True)
    silent = torch.ones(p, 1, dtype=torch.float64)
    power = fourier_power(torch.cat([pure, spread, silent], dim=1), fourier_basis(p))
    assert mean_ipr(power) == pytest.approx((1 + 1 + 1 / 6) / 3)


def test_top_frequencies_rank_the_summed_power():
    p = 13
    weights = torch.tensor([3.0, 1.0, 2.0], dtype=torch.float64)
    token_maps = cosine_map(p, torch.tensor([5.0, 2.0, 4.0]), torch.zeros(3, dtype=torch.float64)) * weights
    power = fourier_power(torch.cat([token_maps, token_maps / 2], dim=1), fourier_basis(p))
    assert top_frequencies(power, 3) == [5, 4, 2]
    assert top_frequencies(power, 1) == [5]
