"""Model shapes, the token maps the Fourier metrics read, and clear errors for bad shapes."""
import pytest
import torch
from omegaconf import OmegaConf

from grokking.config import check_command_line
from grokking.errors import ConfigError
from grokking.models import MLP, Transformer
from tests.helpers import make_cfg


def model_cfg(name, **changes):
    cfg = make_cfg([f"model={name}"]).model
    cfg.merge_with(changes)
    return cfg


def tokens(n=20, p=11):
    return torch.randint(0, p, (n, 2))


@pytest.mark.parametrize("changes", [
    {}, {"depth": 3, "activation": "gelu", "bias": True},
    {"embedding": "learned", "combine": "concat"}, {"embedding": "learned", "combine": "sum"},
])
def test_mlp_token_maps_give_the_first_layer(changes):
    model = MLP(model_cfg("mlp", **changes), n_classes=11, n_values=11)
    x = tokens()
    logits, feats = model(x, features=True)
    assert logits.shape == (20, 11) and len(feats) == model_cfg("mlp", **changes).depth
    maps = model.token_maps()
    bias = model.token_bias if model.embedding == "onehot" else model.hidden[0].bias
    expected = sum(m[x[:, i]] for i, m in enumerate(maps)) + (0 if bias is None else bias)
    torch.testing.assert_close(feats["layer1"], expected)


@pytest.mark.parametrize("changes", [
    {}, {"depth": 2, "layernorm": "pre", "readout": "mean", "sequence": "a ∘ b =", "bias": True},
    {"layernorm": "post", "activation": "gelu"},
])
def test_transformer_shapes(changes):
    model = Transformer(model_cfg("transformer", **changes), n_classes=11, n_values=11)
    logits, feats = model(tokens(), features=True)
    assert logits.shape == (20, 11)
    assert set(feats) == {f"block{i}.{k}" for i in range(model_cfg("transformer", **changes).depth) for k in ("mlp", "resid")}
    (w_neur,) = model.token_maps()
    assert w_neur.shape == (11, 512)


def test_init_scale_multiplies_weights():
    torch.manual_seed(0)
    small = MLP(model_cfg("mlp"), 11, 11)
    torch.manual_seed(0)
    large = MLP(model_cfg("mlp", init_scale=8.0), 11, 11)
    torch.testing.assert_close(large.token_weight, 8 * small.token_weight)


@pytest.mark.parametrize("init, pos_std, embed_std", [("torch", 1.0, 1.0), ("nanda", 256 ** -0.5, 256 ** -0.5)])
def test_transformer_init_draws_the_published_scales(init, pos_std, embed_std):
    torch.manual_seed(0)
    model = Transformer(model_cfg("transformer", width=256, d_mlp=256, bias=True, init=init), 97, 97)
    assert model.pos.std().item() == pytest.approx(pos_std, rel=0.1)
    assert model.embed.weight.std().item() == pytest.approx(embed_std, rel=0.1)
    fc_in = model.blocks[0].fc_in
    if init == "nanda":  # Nanda et al.: N(0, 1/d) matrices, N(0, 1/classes) unembedding, zero biases
        assert fc_in.weight.std().item() == pytest.approx(256 ** -0.5, rel=0.1)
        assert model.unembed.weight.std().item() == pytest.approx(97 ** -0.5, rel=0.1)
        assert fc_in.bias.abs().max().item() == 0
    else:  # nn.Linear's default: uniform within ±1/sqrt(fan_in)
        assert fc_in.weight.abs().max().item() <= 256 ** -0.5 and fc_in.bias.abs().max().item() > 0


def test_a_transformer_config_recorded_before_model_init_still_builds():
    cfg = OmegaConf.create({k: v for k, v in model_cfg("transformer").items() if k != "init"})
    assert Transformer(cfg, 11, 11)(tokens()).shape == (20, 11)


def test_single_frequency_init_puts_one_frequency_per_neuron():
    p = 23
    model = MLP(model_cfg("mlp", init="single_freq"), p, p)
    spectrum = torch.fft.rfft(model.token_maps()[0].T, dim=1).abs().pow(2)[:, 1:]
    assert (spectrum.max(dim=1).values / spectrum.sum(dim=1) > 0.99).all()


def test_heads_that_do_not_divide_the_width_are_a_clear_error():
    with pytest.raises(ConfigError, match=r"model.heads=5 does not divide model.width=128"):
        Transformer(model_cfg("transformer", heads=5), 11, 11)


@pytest.mark.parametrize("overrides, message", [
    (["model=transformer", "model.depth=0"], "model.depth=0 is invalid; it must be >= 1"),
    (["model.activation=swish"], "model.activation=swish is not an option; allowed: relu, gelu, silu, tanh, quad, identity"),
    (["model.width=-3"], "model.width=-3 is invalid; it must be >= 1"),
    (["model=transformer", "model.layernorm=mid"], "model.layernorm=mid is not an option; allowed: none, pre, post"),
    (["model=transformer", "model.init=xavier"], "model.init=xavier is not an option; allowed: nanda, torch"),
    (["model.init_scale=0"], "model.init_scale=0 is invalid; it must be > 0"),
])
def test_bad_model_values_are_refused_by_the_schema(overrides, message):
    with pytest.raises(ConfigError) as error:
        check_command_line(overrides)
    assert str(error.value) == message
