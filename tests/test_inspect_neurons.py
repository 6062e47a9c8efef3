"""grokking.inspect.neurons and .attention on the hand-built Fourier transformer of
tests/test_metrics_progress.py (head 0 reads a, head 1 reads b; 8 quadratic neurons per frequency
form (x +- y)^2 of cos/sin(w a) and cos/sin(w b)) and on random weights."""
import pytest
import torch

from grokking.config import compose_config
from grokking.data import build_dataset
from grokking.inspect.attention import attention_map, attention_patterns, mean_pattern
from grokking.inspect.neurons import (activation_grid, fourier_2d, frequency_clusters, neuron_activations,
                                      neuron_frequencies, neuron_to_logit, readout_fourier)
from grokking.metrics.fourier import fourier_basis
from grokking.models import build_model
from tests.inspect_cases import addition_table, fourier_mlp, fourier_transformer

P, FREQS = 23, (3, 7)


@pytest.fixture(scope="module")
def hand_built():
    model, data = fourier_transformer(P, FREQS), addition_table(P)
    return model, data, neuron_activations(model, data.inputs)


def test_activation_grid_places_each_pair():
    data = addition_table(P)
    acts = torch.stack([data.inputs[:, 0] * 100.0 + data.inputs[:, 1], -data.inputs[:, 0].float()], dim=1)
    grid = activation_grid(acts, data.inputs, P)
    assert grid.shape == (2, P, P) and grid[0, 4, 9] == 409 and grid[1, 4, 9] == -4


def test_fourier_2d_of_a_product_of_cosines_is_one_coefficient():
    k, basis = 4, fourier_basis(P)
    grid = torch.outer(basis[2 * k - 1], basis[2 * k - 1])[None]
    coeffs = fourier_2d(grid, P)
    assert coeffs[0, 2 * k - 1, 2 * k - 1] == pytest.approx(1.0)
    assert coeffs.abs().sum() == pytest.approx(1.0)


def test_neuron_frequencies_of_the_hand_built_transformer(hand_built):
    """(x + y)^2 with x, y waves of frequency k: its product term 2xy (variance 1) lies in the
    block of k, the squares' cos(2k) halves (variance 1/8 each) do not: share 1 / 1.25 = 0.8."""
    model, data, acts = hand_built
    found = neuron_frequencies(acts, data.inputs, P)
    assert found["freq"].tolist() == [FREQS[0]] * 8 + [FREQS[1]] * 8
    assert found["share"].tolist() == pytest.approx([0.8] * 16, abs=1e-4)
    clusters = frequency_clusters(found["freq"], found["share"], min_share=0.75)
    assert clusters == {FREQS[0]: list(range(8)), FREQS[1]: list(range(8, 16))}
    assert frequency_clusters(found["freq"], found["share"]) == {None: list(range(16))}  # 0.85 not reached


def test_readout_lies_on_the_key_frequencies(hand_built):
    model = hand_built[0]
    readout = readout_fourier(neuron_to_logit(model), P)
    assert readout["share"][[k - 1 for k in FREQS]].sum() == pytest.approx(1.0)
    assert readout["component_norms"][0] == pytest.approx(0.0, abs=1e-6)


def test_mlp_neurons_and_readout():
    model, data = fourier_mlp(P, (5,)), addition_table(P)
    acts = neuron_activations(model, data.inputs)
    assert torch.allclose(acts, model.act(model(data.inputs, features=True)[1]["layer1"]))
    assert neuron_frequencies(acts, data.inputs, P)["freq"].tolist() == [5] * acts.shape[1]
    assert readout_fourier(neuron_to_logit(model), P)["share"][4] == pytest.approx(1.0)


def test_random_neurons_have_no_frequency():
    cfg = compose_config(["model=transformer", f"p={P}"])
    data = build_dataset(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, data)
    found = neuron_frequencies(neuron_activations(model, data.inputs), data.inputs, P)
    # a random network's neurons are mostly f(a) + g(b), spread over all K = 11 frequencies' blocks
    assert found["share"].median() < 0.3
    assert frequency_clusters(found["freq"], found["share"]).keys() == {None}
    assert readout_fourier(neuron_to_logit(model), P)["share"].max() < 0.2  # uniform: 1/11


def test_deeper_or_normalised_models_have_no_linear_readout():
    data = addition_table(P)
    for overrides in (["model.depth=2"], ["model=transformer", "model.depth=2"], ["model=transformer", "model.layernorm=pre"]):
        assert neuron_to_logit(build_model(compose_config([f"p={P}", *overrides]), data)) is None


def test_attention_of_the_hand_built_heads(hand_built):
    model, data, _ = hand_built
    (pattern,) = attention_patterns(model, data.inputs)
    assert pattern.shape == (P * P, 2, 3, 3)
    mean = mean_pattern(pattern)
    assert mean[0, 0] == pytest.approx(1.0) and mean[1, 1] == pytest.approx(1.0)
    maps = attention_map(pattern, data.inputs, P, position=0)
    assert maps.shape == (2, P, P) and torch.allclose(maps[0], torch.ones(P, P)) and maps[1].max() < 1e-6


@pytest.mark.parametrize("overrides", [[], ["model.layernorm=pre", "model.bias=true", "model.causal=false"],
                                       ["model.depth=2", "model.layernorm=post", "model.sequence='a ∘ b ='"]])
def test_patterns_reproduce_the_model_attention(overrides):
    """pattern @ V through W_O equals each block's own attention output (scaled_dot_product_attention)."""
    cfg = compose_config(["model=transformer", f"p={P}", "model.width=32", "model.heads=4", *overrides])
    data = build_dataset(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, data)
    patterns = attention_patterns(model, data.inputs)
    h = model.embed(model.tokens(data.inputs)) + model.pos
    with torch.no_grad():
        for block, pattern in zip(model.blocks, patterns):
            x = block.ln1(h) if block.norm == "pre" else h
            n, t, d = x.shape
            v = block.attn.v(x).view(n, t, block.attn.heads, -1).transpose(1, 2)
            mine = block.attn.o((pattern @ v).transpose(1, 2).reshape(n, t, d))
            assert torch.allclose(mine, block.attn(x), atol=1e-5)
            assert torch.allclose(pattern.sum(dim=-1), torch.ones(()), atol=1e-6)
            if block.attn.causal:
                assert pattern[:, :, 0, 1:].abs().max() == 0
            h, _ = block(h)


def test_fourier_2d_equals_the_product_per_unit():
    grid = torch.randn(3, P, P, generator=torch.Generator().manual_seed(0))
    basis = fourier_basis(P, torch.float32)
    assert torch.allclose(fourier_2d(grid, P), torch.stack([basis @ g @ basis.T for g in grid]), atol=1e-5)


@pytest.mark.parametrize("overrides", [[], ["model.layernorm=pre", "model.readout=mean"], ["model.layernorm=post", "model.depth=2"]])
def test_transformer_neurons_are_the_first_mlp_at_the_last_position(overrides):
    cfg = compose_config(["model=transformer", f"p={P}", "model.width=32", *overrides])
    data = build_dataset(cfg)
    model = build_model(cfg, data)
    captured = []
    model.blocks[0].fc_in.register_forward_hook(lambda module, args, out: captured.append(out[:, -1]))
    with torch.no_grad():
        model(data.inputs)
    assert torch.allclose(neuron_activations(model, data.inputs), model.blocks[0].act(captured[0]), atol=1e-6)
