"""The config: each bad override is one ConfigError naming it and what is allowed; presets compose
the published set-ups."""
import pytest
from omegaconf import OmegaConf

from grokking.config import check_command_line, compose_config, quote_path_overrides
from grokking.errors import ConfigError


@pytest.mark.parametrize("args, message", [
    (["op=pow"], "op=pow is not an option; allowed: add, add3, div, "),
    (["opp=add"], "there is no setting opp; did you mean op?"),
    (["model.dept=3"], "there is no setting model.dept; did you mean depth? model has: name, depth,"),
    (["grokfast.alpha=0.9"], "there is no setting grokfast.alpha; grokfast has: name"),
    (["wd=abc"], "wd=abc is not a number (default 1.0)"),
    (["grokfast=ema", "grokfast.alpha=x"], "grokfast.alpha=x is not a number (default 0.98)"),
    (["lr=null"], "lr=null cannot be null (default 0.001)"),
    (["optimizer.betas=[0.9,x]"], "optimizer.betas=[0.9,x] is not a list like [0.9,0.98]"),
    (["optimizer.betas=0.9"], "optimizer.betas=0.9 is not a list like [0.9,0.98]"),
    (["deterministic=1"], "deterministic=1 is not true or false"),
    (["model=mlp", "model.depth=x"], "model.depth=x is not an integer (default 1)"),
    (["wd=0.1,1.0"], "wd=0.1,1.0 is a sweep: add -m to run it as a grid"),
    (["-m", "wd=0.1,abc"], "in wd=0.1,abc: wd=abc is not a number"),
    (["-m", "model.width=64,abc"], "model.width=abc is not an integer (default 512)"),  # not the 64 tried before
    (["-m", "op=add,pow"], "in op=add,pow: op=pow is not an option"),
    (["-m", "op=glob(zz*)"], "op=glob(zz*) matches no option; allowed: add,"),
    (["wd=1.0)"], "Error parsing override 'wd=1.0)'"),
])
def test_bad_override(args, message):
    with pytest.raises(ConfigError) as error:
        check_command_line(args)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("args", [
    ["op=sub", "wd=1", "lr=3e-3", "p=113", "frac=0.3", "seed=7", "steps=10"],  # an int where the default is a float
    ["experiment=power2022", "batch_size=null"],  # null where a config file sets it null
    ["experiment=nanda2023", "model.d_mlp=256", "optimizer.betas=[0.9,0.98]"],  # keys of the preset's groups
    ["+note=first", "~early_stop"],               # + adds and ~ deletes: left to Hydra
    ["-m", "seed=range(3)", "op=glob(s5_*)", "hydra.job.chdir=false"],
    ["--cfg", "job", "op=expr", "op.expr=a*a+b"],
    ["-cn", "another_config", "anything=goes"],   # another config: nothing to check against
])
def test_good_overrides_pass(args):
    check_command_line(args)


def test_path_overrides_are_quoted_except_null():
    assert quote_path_overrides(["resume=runs/op=sub,wd=1.0", "resume=null", "init_from='x'", "wd=1"]) == \
        ["resume='runs/op=sub,wd=1.0'", "resume=null", "init_from='x'", "wd=1"]


@pytest.mark.parametrize("preset, expected", [
    ("power2022", {"model.depth": 2, "model.width": 128, "model.heads": 4, "model.sequence": "a ∘ b =",
                   "model.layernorm": "post", "model.init": "torch", "optimizer.lr": 1e-3,
                   "optimizer.weight_decay": 1.0, "batch_size": 512, "p": 97, "split.frac": 0.5}),
    ("nanda2023", {"model.depth": 1, "model.width": 128, "model.heads": 4, "model.d_mlp": 512,
                   "model.activation": "relu", "model.layernorm": "none", "model.bias": False,
                   "model.init": "nanda", "optimizer.betas": [0.9, 0.98], "batch_size": None, "p": 113,
                   "split.frac": 0.3}),
    ("fourier_features", {"model.activation": "gelu", "model.readout": "mean", "model.init": "torch",
                          "batch_size": 512, "p": 97, "split.frac": 0.3}),
])
def test_presets_compose_the_published_set_ups(preset, expected):
    cfg = compose_config([f"experiment={preset}"])
    assert {key: OmegaConf.select(cfg, key) for key in expected} == expected
