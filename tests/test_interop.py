"""grokking.interop: a run's transformer as a TransformerLens HookedTransformer whose logits equal
the project's on the whole table, for every option TransformerLens can express; a one-line error
naming the option for those it cannot. Skipped without the optional extra (pip install -e '.[interp]')."""
import importlib.util

import pytest
import torch

from grokking.config import compose_config
from grokking.data import build_dataset
from grokking.errors import ConfigError
from grokking.inspect.attention import attention_patterns
from grokking.inspect.load import load_checkpoint
from grokking.interop import hooked_transformer, table_tokens
from grokking.models import build_model
from tests.helpers import run
from tests.services import unavailable

if importlib.util.find_spec("transformer_lens") is None:  # CI installs the extra (.ci/run)
    unavailable("transformer_lens is not installed (optional extra: pip install -e '.[interp]')")

SMALL = ["model=transformer", "p=23", "model.width=32", "model.heads=4", "model.d_mlp=64"]
EXPRESSIBLE = {
    "nanda2023": ["experiment=nanda2023"],  # 1 layer, d 128, 4 heads, d_mlp 512, ReLU, no LN, no biases
    "deep_gelu": [*SMALL, "model.depth=3", "model.activation=gelu"],
    "silu_two_heads": [*SMALL, "model.activation=silu", "model.heads=2"],
    "pre_ln": [*SMALL, "model.layernorm=pre"],
    "pre_ln_biases": [*SMALL, "model.layernorm=pre", "model.bias=true", "model.depth=2"],
    "biases_torch_init": [*SMALL, "model.bias=true", "model.init=torch"],
    "bidirectional": [*SMALL, "model.causal=false", "model.depth=2"],
    "power2022_sequence": [*SMALL, "model.sequence='a ∘ b ='", "model.layernorm=pre", "model.causal=false"],
}
INEXPRESSIBLE = {
    "model.layernorm=post": [*SMALL, "model.layernorm=post"],
    "model.readout=mean": [*SMALL, "model.readout=mean"],
    "model.activation=quad": [*SMALL, "model.activation=quad"],
    "model.activation=tanh": [*SMALL, "model.activation=tanh"],
    "model.activation=identity": [*SMALL, "model.activation=identity"],
    "model=mlp": ["p=23"],
}


def random_model(overrides):
    """The configured model at its init, with the parameters that start constant (LayerNorm gains,
    zero biases) set at random too, so that each one's place in the conversion is checked."""
    cfg = compose_config(overrides)
    data = build_dataset(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, data)
    with torch.no_grad():
        for param in model.parameters():
            if param.min() == param.max():
                param.add_(0.1 * torch.randn(param.shape))
    return model.eval(), data


@pytest.mark.parametrize("overrides", EXPRESSIBLE.values(), ids=EXPRESSIBLE.keys())
def test_logits_equal_on_the_whole_table(overrides):
    model, data = random_model(overrides)
    hooked = hooked_transformer(model)
    with torch.no_grad():
        ours, theirs = model(data.inputs), hooked(model.tokens(data.inputs))[:, -1]
    assert theirs.shape == ours.shape == (len(data.inputs), data.n_classes)
    assert (ours - theirs).abs().max() <= 1e-5


@pytest.mark.parametrize("option, overrides", INEXPRESSIBLE.items(), ids=INEXPRESSIBLE.keys())
def test_inexpressible_options_are_named(option, overrides):
    model, _ = random_model(overrides)
    with pytest.raises(ConfigError, match="cannot express") as error:
        hooked_transformer(model)
    assert option in str(error.value) and "\n" not in str(error.value)


@pytest.mark.slow
def test_from_a_trained_run_folder_and_snapshot(tmp_path):
    """A real short training: the folder's last.pt and a step snapshot convert, TransformerLens'
    cache holds the run's attention patterns and neurons, and its logits are the run's."""
    run(tmp_path, [*SMALL, "progress=none", "steps=20", "eval_every=10", "checkpoint_every=10"])
    tokens = table_tokens(tmp_path)
    for source in (tmp_path, tmp_path / "checkpoints" / "step_0000010.pt"):
        loaded, hooked = load_checkpoint(source), hooked_transformer(source)
        with torch.no_grad():
            ours = loaded.model(loaded.data.inputs)
            logits, cache = hooked.run_with_cache(tokens)
        assert (logits[:, -1] - ours).abs().max() <= 1e-5
        assert torch.allclose(cache["pattern", 0], attention_patterns(loaded.model, loaded.data.inputs)[0], atol=1e-6)
        assert cache["post", 0, "mlp"].shape == (23 * 23, 3, 64)
    assert load_checkpoint(tmp_path).step == 20 and tokens[:, -1].eq(23 + 1).all()  # "=" is token p + 1


def test_a_folder_without_checkpoint_fails_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="no checkpoint there"):
        hooked_transformer(tmp_path / "nothing")


@pytest.mark.slow
def test_an_mlp_run_is_refused(tmp_path):
    run(tmp_path / "mlp", ["p=23", "progress=none", "steps=2", "checkpoint_every=2"])
    with pytest.raises(ConfigError, match="model=mlp"):
        hooked_transformer(tmp_path / "mlp")
    with pytest.raises(ConfigError, match="does not read token sequences"):
        table_tokens(tmp_path / "mlp")
