"""Sparse parity (data=parity): labels against the bits, distinct seeded samples, refusals, packs."""
from __future__ import annotations

import numpy as np
import torch
import pytest
from omegaconf import OmegaConf

from grokking.data import build_dataset
from grokking.errors import ConfigError
from grokking.parity import sparse_parity
from grokking.training.engines.build import build_member
from grokking.training.engines.packed import PackedRun
from grokking.training.engines.solo import SoloEngine
from tests.helpers import make_cfg, metrics, run


def parity_cfg(**data):
    return OmegaConf.create({"n_bits": 12, "k": 3, "samples": 500, "seed": 0, **data})


def test_labels_are_the_parity_of_the_relevant_bits():
    bits, labels, relevant = sparse_parity(parity_cfg())
    assert bits.shape == (500, 12) and set(np.unique(bits)) == {0, 1} and len(relevant) == 3
    for row, label in zip(bits.tolist(), labels.tolist()):
        assert label == sum(row[i] for i in relevant) % 2
    noise = [i for i in range(12) if i not in relevant]
    flipped = bits.copy()
    flipped[:, noise] ^= 1  # the noise bits do not matter
    assert np.array_equal(flipped[:, relevant].sum(axis=1) % 2, labels)
    assert len({row.tobytes() for row in bits}) == 500  # no string twice


def test_the_seed_picks_the_bits_and_the_strings():
    first, again, other = (sparse_parity(parity_cfg(seed=s)) for s in (0, 0, 1))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])
    every = sparse_parity(parity_cfg(n_bits=6, k=2, samples=64))[0]  # all 2**6 strings, each once
    assert len({row.tobytes() for row in every}) == 64


@pytest.mark.parametrize("data, message", [
    ({"k": 13}, "data.k=13 is more than data.n_bits=12; allowed: k <= n_bits"),
    ({"n_bits": 6, "samples": 65}, "data.samples=65 is more than the 64 distinct strings of 6 bits"),
])
def test_impossible_sets_are_refused_in_one_line(data, message):
    with pytest.raises(ConfigError, match=message):
        sparse_parity(parity_cfg(**data))


def test_a_parity_run_splits_the_samples_and_skips_the_fourier_metrics(tmp_path):
    cfg = make_cfg(["data=parity", "data.n_bits=20", "data.samples=300", "frac=0.4"])
    data = build_dataset(cfg)
    assert data.inputs.shape == (300, 20) and data.n_classes == 2 and data.modulus is None
    assert (len(data.train_idx), len(data.val_idx)) == (120, 180)
    run(tmp_path, ["data=parity", "data.samples=300", "steps=10", "progress=none", "report=false",
                   "model.depth=2", "model.width=32", "model.bias=true", "loss=stablemax"])
    first = metrics(tmp_path)[0]
    assert first["metrics/skipped"]["fourier"] == "needs token values in Z_p; this data has no modulus"
    with pytest.raises(ConfigError, match="model=transformer reads tokens"):
        run(tmp_path / "transformer", ["data=parity", "model=transformer", "progress=none"])


def test_members_of_other_k_share_a_pack():
    """data.k changes only the labels (a member key): a pack of k=2 and k=3 trains as their solo runs."""
    base = ["data=parity", "data.n_bits=16", "data.samples=256", "model.depth=2", "model.width=32", "model.bias=true",
            "loss=stablemax", "lr=0.01", "wd=0"]
    cfgs = [make_cfg(base + ["data.k=2"]), make_cfg(base + ["data.k=3", "seed=1"])]
    pack = PackedRun.build(cfgs, "cpu")
    packed = torch.stack([pack.step([True, True]) for _ in range(10)]).double()
    for i, cfg in enumerate(cfgs):
        solo = SoloEngine(build_member(cfg, "cpu", fresh=True), "cpu")
        losses = torch.tensor([solo.step([True]).item() for _ in range(10)], dtype=torch.float64)
        torch.testing.assert_close(packed[:, i], losses, rtol=1e-5, atol=1e-12)
