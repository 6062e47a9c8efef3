"""grad_norms: the gradient's L2 norm in total and per parameter group, named as weight_norms."""
import math

import pytest
import torch
from torch import nn

from grokking.config import compose_config
from grokking.data import build_dataset
from grokking.metrics.norms import grad_norms, weight_norms
from grokking.models import build_model


def test_norms_of_known_gradients():
    model = nn.Module()
    model.hidden = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 1, bias=False)])
    model.hidden[0].weight.grad = torch.full((2, 2), 1.0)
    model.hidden[0].bias.grad = torch.full((2,), 2.0)
    model.hidden[1].weight.grad = torch.full((1, 2), 3.0)
    out = grad_norms(model)
    assert out == pytest.approx({"grad_norm": math.sqrt(30), "grad_norm/hidden.0": math.sqrt(12), "grad_norm/hidden.1": math.sqrt(18)})


def test_a_backward_pass_gives_every_group_and_parameters_without_gradient_are_left_out():
    cfg = compose_config(["model=transformer", "p=23", "model.width=32", "model.d_mlp=64", "model.depth=2"])
    data = build_dataset(cfg)
    model = build_model(cfg, data)
    assert grad_norms(model) == {}
    nn.functional.cross_entropy(model(data.inputs), data.labels).backward()
    out = grad_norms(model)
    assert {k.replace("grad_norm", "norm") for k in out} == {k.replace("weight_norm", "norm") for k in weight_norms(model)}
    total = torch.cat([p.grad.flatten() for p in model.parameters()]).norm().item()
    assert out["grad_norm"] == pytest.approx(total, rel=1e-6)
    model.embed.weight.grad = None
    assert "grad_norm/embed" not in grad_norms(model)
