"""grokking.inspect.progress: the logits' cosine coefficients (Nanda et al. 2023) in closed form,
against the direct sum, on the hand-built transformer and on random logits."""
import math

import pytest
import torch

from grokking.config import compose_config
from grokking.data import build_dataset
from grokking.inspect.progress import cos_coefficients, logit_cube, model_cos_coefficients, restricted_excluded
from grokking.metrics import MetricSuite
from grokking.models import build_model
from grokking.training.evaluate import evaluate
from tests.inspect_cases import addition_table, fourier_mlp, fourier_transformer

P, FREQS = 23, (3, 7)


def cos_cube(p: int, k: int) -> torch.Tensor:
    a, b, c = torch.meshgrid(*[torch.arange(p, dtype=torch.float64)] * 3, indexing="ij")
    return torch.cos(2 * math.pi * k * (a + b - c) / p)


def test_coefficients_equal_the_direct_sum():
    cube = torch.randn(P, P, P, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    found = cos_coefficients(cube, P)
    direct = [(cube * cos_cube(P, k)).sum() / cos_cube(P, k).norm() for k in range(1, P // 2 + 1)]
    assert found["coefficients"].tolist() == pytest.approx(torch.stack(direct).tolist(), abs=1e-9)
    assert found["residual"] > 0.95  # random logits: almost nothing on the cosine cubes


def test_one_cosine_cube_is_all_explained():
    found = cos_coefficients(2.0 * cos_cube(P, 4) + 1.0 * cos_cube(P, 9), P)
    assert found["cos_sim"][3] == pytest.approx(2 / math.sqrt(5)) and found["cos_sim"][8] == pytest.approx(1 / math.sqrt(5))
    assert found["residual"] == pytest.approx(0.0, abs=1e-6)


def test_logit_cube_places_each_pair():
    data = addition_table(P)
    logits = torch.nn.functional.one_hot(data.labels, P).float()
    cube = logit_cube(logits, data.inputs, P)
    assert cube[5, 20, (5 + 20) % P] == 1 and cube.sum() == P * P


def test_hand_built_models_put_their_logits_on_their_frequencies():
    """The transformer's logits are 4 sum_w cos(w(a+b-c)) exactly: each frequency 1/sqrt(2) of the
    norm, nothing left. The MLP's hold the product terms and the squares' cos(w(2a - c)) ones."""
    data = addition_table(P)
    found = model_cos_coefficients(fourier_transformer(P, FREQS), data.inputs, P)
    assert found["cos_sim"][[k - 1 for k in FREQS]].tolist() == pytest.approx([2**-0.5] * 2, abs=1e-5)
    assert found["residual"] == pytest.approx(0.0, abs=1e-3)
    mlp = model_cos_coefficients(fourier_mlp(P, FREQS), data.inputs, P)
    assert set(torch.topk(mlp["cos_sim"], 2).indices.add(1).tolist()) == set(FREQS)
    assert mlp["cos_sim"].abs().sum() == pytest.approx(mlp["cos_sim"][[k - 1 for k in FREQS]].sum())


def test_restricted_excluded_as_the_training_metrics_compute_them(tmp_path):
    cfg = compose_config(["model=transformer", f"p={P}", "frac=0.3"])
    data = build_dataset(cfg)
    model = fourier_transformer(P, FREQS)
    found = restricted_excluded(cfg, model, data)
    suite = MetricSuite(cfg, model, data)
    _, logits, features = evaluate(model, data, cfg, features=True)
    assert found == suite.progress_measures(logits, features) and found["key_freqs"] == list(FREQS)
    assert restricted_excluded(cfg, model, data, key_freqs=[3])["key_freqs"] == [3]
    mlp_cfg = compose_config([f"p={P}"])
    assert restricted_excluded(mlp_cfg, build_model(mlp_cfg, data), data) == {"skipped": "needs a one-layer transformer"}
