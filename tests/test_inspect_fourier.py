"""grokking.inspect.fourier on embeddings whose answer is known in closed form."""
import math

import pytest
import torch

from grokking.inspect.fourier import (addition_theorem, circle, model_circles, model_principal_circle, model_spectrum,
                                     principal_circle, spectrum, sum_share)
from grokking.inspect.neurons import activation_grid, neuron_activations
from tests.inspect_cases import addition_table, fourier_mlp, fourier_transformer

P, K = 23, 5


def circle_embedding(p: int, k: int, a_axis: float = 1.0, b_axis: float = 1.0, dims: int = 16, plane: int = 0) -> torch.Tensor:
    """Token a at a_axis cos(w a) u + b_axis sin(w a) v for orthonormal u, v (the ``plane``-th pair
    of one orthonormal set) in ``dims`` dimensions."""
    axes = torch.linalg.qr(torch.randn(dims, dims, generator=torch.Generator().manual_seed(1), dtype=torch.float64))[0].T
    u, v = axes[2 * plane], axes[2 * plane + 1]
    angle = 2 * math.pi * k * torch.arange(p, dtype=torch.float64) / p
    return a_axis * torch.cos(angle)[:, None] * u + b_axis * torch.sin(angle)[:, None] * v + 3.0  # offset: centred away


def test_exact_circle_has_one_frequency_and_circularity_one():
    emb = circle_embedding(P, K)
    s = spectrum(emb, P)
    assert s["ranked"][0] == K and s["key_freqs"] == [K]
    assert s["share"][K - 1] == pytest.approx(1.0) and s["top_share"] == pytest.approx(1.0)
    principal = principal_circle(emb, P)
    assert principal["k"] == K and principal["circularity"] == pytest.approx(1.0) and principal["explained"] == pytest.approx(1.0)
    c = circle(emb, P, K)
    assert c["roundness"] == pytest.approx(1.0)
    assert c["cos_corr"] == pytest.approx(1.0) and c["sin_corr"] == pytest.approx(1.0)
    radius = c["points"].norm(dim=1)
    assert torch.allclose(radius, radius[0].expand_as(radius))


def test_ellipse_in_closed_form():
    emb = circle_embedding(P, K, a_axis=2.0, b_axis=1.0)
    assert circle(emb, P, K)["roundness"] == pytest.approx((2 + 1) ** 2 / (2 * (4 + 1)))
    assert principal_circle(emb, P)["circularity"] == pytest.approx((2 + 1) ** 2 / (2 * (4 + 1)))


def test_principal_plane_holds_the_strongest_circle():
    emb = 2 * circle_embedding(P, K) + circle_embedding(P, 8, plane=1)
    principal = principal_circle(emb, P)
    assert principal["k"] == K and principal["circularity"] == pytest.approx(1.0)
    assert principal["explained"] == pytest.approx(4 / 5)
    assert [c["roundness"] for c in (circle(emb, P, K), circle(emb, P, 8))] == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("dims", [16, 128, 1024])
def test_random_embedding_has_no_structure(dims):
    p = 113
    emb = torch.randn(p, dims, generator=torch.Generator().manual_seed(0))
    s = spectrum(emb, p)
    assert s["key_freqs"] == [] and s["top_share"] < 0.1  # 3/K = 0.054 expected
    assert principal_circle(emb, p)["circularity"] < 0.15  # best of K = 56 random fits: about 2 ln(K)/p = 0.07
    roundness = torch.tensor([circle(emb, p, k)["roundness"] for k in range(1, 57)])
    assert roundness.mean() == pytest.approx(dims / (dims + p), abs=0.06)  # the fitted plane's documented baseline


def test_fourier_mlp_spectrum_finds_its_frequencies():
    model = fourier_mlp(P, (3, 7))
    s = model_spectrum(model, P)
    assert sorted(s["key_freqs"]) == [3, 7] and s["top_share"] == pytest.approx(1.0)
    assert [c["roundness"] for c in model_circles(model, P, [3, 7])] == pytest.approx([1.0, 1.0])
    assert model_principal_circle(model, P)["k"] in (3, 7)


def test_hand_built_transformer_embedding_is_two_circles():
    model = fourier_transformer(P, (3, 7))
    s = model_spectrum(model, P)
    assert sorted(s["key_freqs"]) == [3, 7] and s["top_share"] == pytest.approx(1.0)
    assert [c["roundness"] for c in model_circles(model, P, [3, 7])] == pytest.approx([1.0, 1.0])


def test_addition_theorem_identity():
    grids = addition_theorem(P, K)
    assert torch.allclose(grids["difference"], grids["cos_sum"], atol=1e-12)
    assert not torch.allclose(grids["cos_a_cos_b"], grids["cos_sum"])


def test_sum_share_picks_the_neurons_that_compute_cos_of_the_sum():
    a, b = torch.meshgrid(torch.arange(P), torch.arange(P), indexing="ij")
    w = 2 * math.pi * K / P
    grid = torch.stack([torch.cos(w * (a + b) + 0.3), torch.cos(w * a), torch.randn(P, P, generator=torch.Generator().manual_seed(0))])
    share = sum_share(grid, P, K)
    assert share[0] == pytest.approx(1.0) and share[1] == pytest.approx(0.0, abs=1e-12) and share[2] < 0.05


def test_sum_share_of_the_fourier_mlp_neurons():
    """Each quadratic neuron's (cos(wa+phi) + cos(wb+phi))^2 has variance 1 + 2 * 1/8 around its
    mean, of which cos(w(a+b) + 2 phi) holds 1/2: a share of 0.4 at its own frequency."""
    model, data = fourier_mlp(P, (3,)), addition_table(P)
    grid = activation_grid(neuron_activations(model, data.inputs), data.inputs, P)
    assert sum_share(grid, P, 3).tolist() == pytest.approx([0.4] * grid.shape[0])
