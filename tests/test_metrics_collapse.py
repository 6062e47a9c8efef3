"""Softmax collapse, the NLM cosine and the lazy-to-rich metrics against closed forms."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from grokking.metrics.collapse import nlm_cosine, softmax_collapse
from grokking.metrics.lazy_rich import label_cka, weight_change
from grokking.training.engines.build import build_member, initial_weights
from grokking.training.loss import per_example_loss
from tests.helpers import FAST, make_cfg, metrics, run


def margin_logits(margins: list[float], classes: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """One row per margin: the correct class (row % classes) at ``margin``, the others at 0."""
    labels = torch.arange(len(margins)) % classes
    logits = torch.zeros(len(margins), classes)
    logits[torch.arange(len(margins)), labels] = torch.tensor(margins)
    return logits, labels


def test_softmax_collapse_counts_rows_whose_loss_and_gradient_round_to_zero():
    """With four other classes at 0, the correct probability 1/(1 + 4e^-m) rounds to 1 in float32
    from m ≈ 18 on, in float64 from m ≈ 39; StableMax never rounds there."""
    margins = [2.0, 10.0, 25.0, 30.0, 45.0, 60.0]
    logits, labels = margin_logits(margins)
    rows = torch.arange(len(margins))
    expected_norm = sum(margins) / len(margins)
    for dtype, collapsed in [("float32", 4), ("float64", 2), ("float16", 5)]:
        out = softmax_collapse(per_example_loss(logits, labels, "ce", dtype), logits)
        assert out["collapse/fraction"] == collapsed / len(margins), dtype
        assert out["collapse/logit_norm"] == pytest.approx(expected_norm, rel=1e-12)
        z = logits.to(getattr(torch, dtype), copy=True).requires_grad_()  # those rows' correct logits get no push
        F.cross_entropy(z, labels, reduction="sum").backward()
        pushed = z.grad[rows, labels] != 0
        assert pushed.tolist() == [i < len(margins) - collapsed for i in range(len(margins))], dtype
    assert softmax_collapse(per_example_loss(logits, labels, "stablemax", "float32"), logits)["collapse/fraction"] == 0


@pytest.mark.parametrize("classes", [2, 5, 11])
def test_nlm_cosine_of_a_perfect_linear_classifier(classes):
    """W = c I on one-hot inputs: the gradient has q off the diagonal and -(C-1)q on it, so
    cos(-∇L, W) = sqrt((C-1)/C) whatever c; rows in one pass or one by one give the same."""
    model = torch.nn.Linear(classes, classes, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(3.0 * torch.eye(classes, dtype=torch.float64))
    inputs, labels = torch.eye(classes, dtype=torch.float64), torch.arange(classes)
    expected = math.sqrt((classes - 1) / classes)
    loss = lambda logits, y: per_example_loss(logits, y, "ce", "float64")  # noqa: E731
    for rows in (classes, 1):
        assert nlm_cosine(model, inputs, labels, loss, rows) == pytest.approx(expected, rel=1e-12)
    assert model.weight.grad is None


def test_label_cka_closed_forms():
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 4
    onehot = F.one_hot(labels, 4).double()
    rotation, _ = torch.linalg.qr(torch.randn(4, 4, generator=gen, dtype=torch.float64))
    assert label_cka(onehot @ rotation * 7 + 2, labels, 4) == pytest.approx(1.0, rel=1e-6)
    same_means = torch.randn(15, 3, generator=gen, dtype=torch.float64).repeat_interleave(4, dim=0)
    assert label_cka(same_means, labels, 4) == pytest.approx(0.0, abs=1e-6)  # every class the same rows
    assert label_cka(torch.ones(60, 3), labels, 4) is None
    x = torch.randn(60, 9, generator=gen, dtype=torch.float64)  # against the kernel form, n x n
    h = torch.eye(60, dtype=torch.float64) - 1 / 60
    k, l = h @ x @ x.T @ h, h @ onehot @ onehot.T @ h
    assert label_cka(x, labels, 4) == pytest.approx(((k * l).sum() / (k.norm() * l.norm())).item(), rel=1e-5)


def test_weight_change_is_zero_at_init_and_known_for_a_scaled_copy():
    cfg = make_cfg(FAST + ["model.depth=2", "model.width=32", "model.bias=true"])
    member = build_member(cfg, "cpu", fresh=True)
    initial = initial_weights(cfg, member.data)
    at_init = weight_change(member.model, initial)
    assert at_init["weight_change"] == 0 and at_init["weight_change/readout"] == 0
    with torch.no_grad():
        for param in member.model.parameters():
            param.mul_(3.0)
    scaled = weight_change(member.model, initial)
    for key in ("weight_change", "weight_change/token", "weight_change/hidden.0", "weight_change/readout"):
        assert scaled[key] == pytest.approx(2.0, rel=1e-6), key
    assert None not in scaled.values()  # token_bias starts at 0, but its group holds token_weight too


def test_a_run_logs_the_new_metrics_where_they_are_due(tmp_path):
    """Default cadences: collapse and weight change at every evaluation; with nlm_every and
    cka_every set, the cosine and the alignment too, at step 0 included."""
    run(tmp_path, FAST + ["steps=20", "metrics.nlm_every=2", "metrics.cka_every=1"])
    records = metrics(tmp_path)
    assert [r["step"] for r in records] == [0, 10, 20]
    assert records[0]["weight_change"] == 0 and records[-1]["weight_change"] > 0
    assert all("collapse/fraction" in r and "label_cka" in r for r in records)
    assert ["collapse/nlm_cos" in r for r in records] == [True, False, True]
    assert -1 <= records[-1]["collapse/nlm_cos"] <= 1
