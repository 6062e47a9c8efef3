"""Linear probe: separable-by-construction features score ~1, random labels score ~chance."""
import pytest
import torch

from grokking.metrics.probe import probe_accuracies, probe_accuracy


def test_separable_features_are_probed_perfectly():
    g = torch.Generator().manual_seed(0)
    classes, units, n = 10, 64, 2000
    labels = torch.randint(0, classes, (n,), generator=g)
    centres = 3 * torch.randn(classes, units, generator=g)
    x = (centres[labels] + 0.3 * torch.randn(n, units, generator=g)).float() * 1e3  # scale-free
    assert probe_accuracy(x[:1000], labels[:1000], x[1000:], labels[1000:], classes, 1e-3) >= 0.99


def test_random_labels_score_chance():
    g = torch.Generator().manual_seed(1)
    classes, n = 5, 4000
    x = torch.randn(n, 32, generator=g)
    labels = torch.randint(0, classes, (n,), generator=g)
    assert probe_accuracy(x[:2000], labels[:2000], x[2000:], labels[2000:], classes, 1e-3) == pytest.approx(1 / classes, abs=0.04)


def test_dead_layer_predicts_the_majority_class():
    labels = torch.tensor([0, 1, 1, 1, 2, 1])
    acc = probe_accuracy(torch.zeros(4, 8), labels[:4], torch.zeros(2, 8), labels[4:], 3, 1e-3)
    assert acc == 0.5


def test_constant_layer_predicts_the_majority_class_and_dead_units_do_not_hurt():
    labels = torch.tensor([2, 2, 0, 1, 2, 0, 2])
    constant = torch.full((7, 5), 3.7)  # saturated units: the same value for every input
    assert probe_accuracy(constant[:5], labels[:5], constant[5:], labels[5:], 3, 1e-3) == 0.5
    g = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 4, (400,), generator=g)
    half_dead = torch.cat([torch.nn.functional.one_hot(labels, 4).float(), torch.zeros(400, 4)], dim=1)
    assert probe_accuracy(half_dead[:300], labels[:300], half_dead[300:], labels[300:], 4, 1e-3) == 1.0


def test_probe_accuracies_per_layer():
    g = torch.Generator().manual_seed(2)
    labels = torch.randint(0, 3, (300,), generator=g)
    feats = {"layer1": torch.nn.functional.one_hot(labels, 3).float(), "layer2": torch.randn(300, 4, generator=g)}
    out = probe_accuracies(feats, labels, torch.arange(200), torch.arange(200, 300), 3, 1e-3)
    assert out["probe_acc/layer1"] == 1.0 and out["probe_acc/layer2"] < 0.6
