"""Feature rank (Fan et al. 2024) and effective rank (Roy & Vetterli 2007) on features of known rank."""
import pytest
import torch

from grokking.metrics.rank import covariance_spectrum, effective_rank, feature_ranks, numerical_rank


def low_rank(n: int, units: int, rank: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, rank, generator=g, dtype=torch.float64) @ torch.randn(rank, units, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("rank", [1, 7, 40])
def test_known_rank_is_found(rank):
    h = low_rank(600, 128, rank) + 5.0  # an offset does not change the covariance
    assert numerical_rank(covariance_spectrum(h)) == rank


def test_known_rank_with_small_noise_and_float32_features():
    h = low_rank(600, 256, 12, seed=1)
    noisy = h + 1e-9 * h.std() * torch.randn(h.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert numerical_rank(covariance_spectrum(noisy)) == 12
    assert numerical_rank(covariance_spectrum(h.float())) == 12  # float32 rounding of model features


def test_matches_library_matrix_rank_of_the_covariance():
    h = low_rank(300, 64, 20, seed=3) + 1e-6 * torch.randn(300, 64, dtype=torch.float64)
    for x in (h, low_rank(300, 64, 20, seed=4)):
        assert numerical_rank(covariance_spectrum(x)) == torch.linalg.matrix_rank(torch.cov(x.T))


def test_effective_rank_of_isotropic_features_is_near_full():
    h = torch.randn(20000, 32, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    assert effective_rank(covariance_spectrum(h)) == pytest.approx(32, rel=0.01)


def test_effective_rank_of_equal_directions_is_their_number_and_below_rank_otherwise():
    basis = torch.linalg.qr(torch.randn(50, 50, dtype=torch.float64))[0]
    signs = torch.tensor([[1.0, 1, 1], [1, -1, 1], [1, 1, -1], [1, -1, -1]], dtype=torch.float64)
    h = torch.cat([signs, -signs]) @ basis[:3]  # centred, three equal singular values
    assert effective_rank(covariance_spectrum(h)) == pytest.approx(3.0)
    skewed = low_rank(500, 50, 5, seed=6) * torch.linspace(0.1, 3, 50, dtype=torch.float64)
    assert 1 < effective_rank(covariance_spectrum(skewed)) < 5


def test_feature_ranks_keys_and_rows():
    h = torch.zeros(10, 4)
    h[5:, 0], h[5:, 1] = torch.arange(5.0), torch.arange(5.0) ** 2
    out = feature_ranks({"layer1": h, "layer2": torch.ones(10, 3)}, torch.arange(5, 10))
    assert out["feature_rank/layer1"] == 2 and isinstance(out["feature_rank/layer1"], int)
    assert 1 < out["effective_rank/layer1"] < 2
    assert out["feature_rank/layer2"] == 0  # constant features
    assert out["effective_rank/layer2"] != out["effective_rank/layer2"]  # nan, stored as null
