"""Deep grokking end to end: the presets compose and train, and the offline one groks on a CPU."""
from __future__ import annotations

import pytest
import torch

from tests.helpers import metrics, run
from tests.test_images import fake_mnist


@pytest.mark.parametrize("preset, hidden_layers", [("fan2024", 11), ("omnigrok_mnist", 2)])
def test_mnist_presets_train_on_idx_files(tmp_path, preset, hidden_layers):
    fake_mnist(tmp_path / "mnist", n_train=60, n_test=30)
    summary = run(tmp_path / "run", [f"experiment={preset}", f"data.dir={tmp_path / 'mnist'}", "data.download=false",
                                     "data.n_train=40", "steps=3", "eval_schedule=linear", "eval_every=1",
                                     "progress=none"])
    assert summary["status"] == "completed"
    first = metrics(tmp_path / "run")[0]  # step 0 gets every enabled metric
    assert f"feature_rank/layer{hidden_layers}" in first and f"feature_rank/layer{hidden_layers + 1}" not in first


@pytest.fixture
def one_thread():
    """A 200-wide MLP trains fastest on one thread: on a busy 2-core machine, two threads made
    it 3x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
def test_deep_digits_memorises_first_and_generalises_later(tmp_path, one_thread):
    """The deep-grokking signature on the offline digits: a 4-hidden-layer MLP with alpha=8
    fits its 200 training images while validation is still near chance, and validation climbs
    long after (seeds 0-3 memorise by 1450-2150 steps at 15-25% validation, ~80% by 4000)."""
    summary = run(tmp_path, ["experiment=deep_digits", "steps=4000", "progress=none"])
    history = metrics(tmp_path)
    memorised = summary["steps_to_memorize"]
    assert memorised is not None and memorised <= 3000
    at_memorised = next(r for r in history if r["step"] == memorised)
    assert at_memorised["val/acc"] < 0.4
    assert summary["val/acc"] >= 0.7 and summary["val/acc"] - at_memorised["val/acc"] >= 0.4
    per_layer = [r for r in history if "feature_rank/layer1" in r]
    assert len(per_layer) >= 10  # Fan et al.'s per-layer metrics, every 100 steps
    for record in per_layer:
        for layer in range(1, 5):
            assert 1 <= record[f"feature_rank/layer{layer}"] <= 200
            assert 0 <= record[f"probe_acc/layer{layer}"] <= 1
