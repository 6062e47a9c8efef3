"""Weight norms: total L2 norm (Omnigrok) and per-group norms."""
import math

import pytest
import torch
from torch import nn

from grokking.metrics.norms import group_of, weight_norms


@pytest.mark.parametrize("name, group", [
    ("token_weight", "token"), ("token_bias", "token"), ("pos", "pos"), ("embed.weight", "embed"),
    ("hidden.0.weight", "hidden.0"), ("blocks.1.attn.q.weight", "blocks.1"), ("readout.bias", "readout"),
])
def test_groups(name, group):
    assert group_of(name) == group


def test_norms_of_known_weights():
    model = nn.Module()
    model.hidden = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 1, bias=False)])
    with torch.no_grad():
        model.hidden[0].weight.fill_(1.0)
        model.hidden[0].bias.fill_(2.0)
        model.hidden[1].weight.fill_(3.0)
    out = weight_norms(model)
    assert out["norm/hidden.0"] == pytest.approx(math.sqrt(4 + 8))
    assert out["norm/hidden.1"] == pytest.approx(math.sqrt(18))
    assert out["weight_norm"] == pytest.approx(math.sqrt(30))
