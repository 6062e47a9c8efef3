"""Restricted and excluded loss (Nanda et al. 2023) on a hand-built Fourier-algorithm transformer.

The network computes logits_c = scale * sum_w cos(w (a + b - c)) with no memorisation component:
head 0 copies cos/sin(w a) from position a, head 1 copies cos/sin(w b) from position b into the
"=" position; eight quadratic neurons per frequency form squares whose differences are
cos(w (a+b)) and sin(w (a+b)); W_out and W_U turn those into the logits.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from grokking.data import Dataset, build_dataset
from grokking.metrics import MetricSuite, load_settings
from grokking.metrics.progress_measures import key_frequencies, restricted_excluded, sum_directions, variance_explained
from grokking.models import Transformer, build_model
from grokking.training.evaluate import evaluate
from tests.helpers import make_cfg

P, FREQS, SCALE = 23, (3, 7), 4.0
WIDTH, HEADS, QUERY, KEY_A, KEY_B = 32, 2, 29, 30, 31
# per frequency, neurons (first + sign * second)^2 feeding output `target` (0: cos(w(a+b)), 1: sin)
# with `weight`: 4 ca cb = (ca+cb)^2 - (ca-cb)^2 and so on for sa sb, sa cb, ca sb
NEURONS = [("ca", 1, "cb", 0, 0.25), ("ca", -1, "cb", 0, -0.25), ("sa", 1, "sb", 0, -0.25), ("sa", -1, "sb", 0, 0.25),
           ("sa", 1, "cb", 1, 0.25), ("sa", -1, "cb", 1, -0.25), ("ca", 1, "sb", 1, 0.25), ("ca", -1, "sb", 1, -0.25)]


def fourier_transformer(p: int = P, freqs=FREQS) -> Transformer:
    cfg = OmegaConf.create(dict(width=WIDTH, heads=HEADS, depth=1, d_mlp=8 * len(freqs), layernorm="none",
                                readout="last", sequence="a b =", activation="quad", bias=False, causal=True,
                                init="torch", init_scale=1.0))
    model = Transformer(cfg, p, p)
    f = len(freqs)
    slot = {"ca": lambda i: 2 * f + 2 * i, "sa": lambda i: 2 * f + 2 * i + 1,  # copies of a
            "cb": lambda i: 4 * f + 2 * i, "sb": lambda i: 4 * f + 2 * i + 1}  # copies of b
    out_dim = 6 * f  # cos(w(a+b)) at out_dim + 2i, sin at out_dim + 2i + 1
    head = WIDTH // HEADS
    with torch.no_grad():
        for param in model.parameters():
            param.zero_()
        a = torch.arange(p, dtype=torch.float32)
        for i, w in enumerate(freqs):
            model.embed.weight[:p, 2 * i] = torch.cos(2 * math.pi * w * a / p)
            model.embed.weight[:p, 2 * i + 1] = torch.sin(2 * math.pi * w * a / p)
        model.pos[0, KEY_A], model.pos[1, KEY_B], model.pos[2, QUERY] = 1.0, 1.0, 1.0
        attn = model.blocks[0].attn
        for h, key in enumerate((KEY_A, KEY_B)):
            attn.q.weight[h * head, QUERY] = attn.k.weight[h * head, key] = 20.0  # score 100: one-hot attention
            for d in range(2 * f):
                attn.v.weight[h * head + d, d] = 1.0
                attn.o.weight[2 * f * (h + 1) + d, h * head + d] = 1.0
        block = model.blocks[0]
        for i in range(f):
            for j, (first, sign, second, target, weight) in enumerate(NEURONS):
                n = 8 * i + j
                block.fc_in.weight[n, slot[first](i)] = 1.0
                block.fc_in.weight[n, slot[second](i)] = float(sign)
                block.fc_out.weight[out_dim + 2 * i + target, n] = weight
        c = torch.arange(p, dtype=torch.float32)
        for i, w in enumerate(freqs):
            model.unembed.weight[:, out_dim + 2 * i] = SCALE * torch.cos(2 * math.pi * w * c / p)
            model.unembed.weight[:, out_dim + 2 * i + 1] = SCALE * torch.sin(2 * math.pi * w * c / p)
    return model


def addition_table(p: int = P, frac: float = 0.3) -> Dataset:
    a, b = (v.reshape(-1) for v in torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij"))
    order = torch.randperm(p * p, generator=torch.Generator().manual_seed(0))
    cut = int(frac * p * p)
    return Dataset(inputs=torch.stack([a, b], 1), labels=(a + b) % p, train_idx=order[:cut].sort().values,
                   val_idx=order[cut:].sort().values, n_classes=p, n_values=p, modulus=p)


@pytest.fixture(scope="module")
def hand_built():
    model, data = fourier_transformer(), addition_table()
    logits, feats = model(data.inputs, features=True)
    return model, data, logits.detach(), {k: v.detach() for k, v in feats.items()}


def expected_logits(data: Dataset) -> torch.Tensor:
    total = (data.inputs[:, 0] + data.inputs[:, 1]).double()[:, None]
    c = torch.arange(P, dtype=torch.float64)[None, :]
    return SCALE * sum(torch.cos(2 * math.pi * w * (total - c) / P) for w in FREQS)


def test_hand_built_network_computes_the_fourier_algorithm(hand_built):
    model, data, logits, _ = hand_built
    torch.testing.assert_close(logits.double(), expected_logits(data), atol=1e-3, rtol=0)
    assert (logits.argmax(1) == data.labels).all()


def test_sum_directions_are_orthonormal_over_the_table():
    waves = sum_directions(addition_table().inputs, P, [1, 4, 11])
    torch.testing.assert_close(waves @ waves.T, torch.eye(6, dtype=torch.float64), atol=1e-10, rtol=0)
    assert waves.sum(dim=1).abs().max() < 1e-9  # orthogonal to the constant


def test_key_frequencies_are_the_built_ones(hand_built):
    model, data, _, feats = hand_built
    acts = model.blocks[0].act(feats["block0.mlp"])
    fve = variance_explained(acts, data.inputs, P)
    assert fve.shape == (16, 11)
    assert torch.equal(fve.argmax(dim=1), torch.tensor([2] * 8 + [6] * 8))  # frequencies 3 and 7
    assert key_frequencies(acts, data.inputs, P, 0.5, 0.05) == [3, 7]


def test_variance_explained_of_a_one_frequency_neuron_is_one():
    data = addition_table()
    a, b = data.inputs[:, 0].double(), data.inputs[:, 1].double()
    acts = torch.stack([torch.cos(2 * math.pi * 5 * a / P) * torch.sin(2 * math.pi * 5 * b / P),
                        torch.cos(2 * math.pi * 2 * a / P) + 7], dim=1)
    fve = variance_explained(acts, data.inputs, P)
    torch.testing.assert_close(fve[:, [4, 1]], torch.eye(2, dtype=torch.float64))


def test_restricted_loss_is_near_full_loss_and_excluded_loss_is_high(hand_built):
    model, data, logits, feats = hand_built
    block = model.blocks[0]
    acts = block.act(feats["block0.mlp"])
    neuron_to_logit = block.fc_out.weight.T @ model.unembed.weight.T
    full = F.cross_entropy(logits.double(), data.labels)
    args = (acts, logits, neuron_to_logit, data.inputs, data.labels, data.train_idx, data.val_idx, P)
    out = restricted_excluded(*args, [3, 7])
    assert out["restricted_loss"] == pytest.approx(full.item(), abs=1e-3)
    assert out["excluded_loss"] == pytest.approx(math.log(P), abs=1e-3)  # nothing left: uniform logits
    partial = restricted_excluded(*args, [3])
    assert out["restricted_loss"] + 0.5 < partial["restricted_loss"] < math.log(P)
    none = restricted_excluded(*args, [])
    assert none["restricted_loss"] == pytest.approx(math.log(P), abs=1e-3)
    assert none["excluded_loss"] == pytest.approx(F.cross_entropy(logits[data.train_idx].double(), data.labels[data.train_idx]).item())


def test_suite_logs_progress_measures_for_a_one_layer_transformer_on_add(hand_built):
    model, data, logits, feats = hand_built
    cfg = make_cfg(["model=transformer", f"p={P}", "steps=10"])
    out = MetricSuite(cfg, model, data)(0, logits, feats)
    assert out["key_freqs"] == [3, 7]
    assert out["excluded_loss"] > 3 and out["restricted_loss"] < 0.5
    assert "metrics/skipped" not in out


SMALL = ["model=transformer", "model.width=16", "model.d_mlp=16", "model.heads=2"]


@pytest.mark.parametrize("overrides, reason", [
    (["model=mlp", "model.width=16"], "one-layer transformer"),
    (SMALL + ["model.depth=2"], "one-layer transformer"),
    (SMALL + ["op=sub"], "op=add"),
    (SMALL + ["op=s5_xy"], "op=add"),
    (SMALL + ["model.layernorm=pre"], "layernorm"),
])
def test_suite_skips_progress_measures_with_a_note(overrides, reason):
    cfg = make_cfg(overrides + ["p=11", "steps=10"])
    data = build_dataset(cfg)
    model = build_model(cfg, data)
    suite = MetricSuite(cfg, model, data, load_settings(cfg, norms_every=0, fourier_every=0, rank_every=0))
    _, logits, feats = evaluate(model, data, cfg, features=suite.wants_features)
    out = suite(0, logits, feats)
    assert "restricted_loss" not in out and reason in out["metrics/skipped"]["restricted"]
    assert "metrics/skipped" not in suite(10, logits, feats)
