"""grokking.inspect.mechanism (He et al. 2025) on the hand-built Fourier MLP, whose phases are
aligned (psi = 2 phi) by construction, and on random weights."""
import math

import pytest
import torch

from grokking.config import compose_config
from grokking.data import build_dataset
from grokking.inspect.load import initial_model, load_checkpoint
from grokking.inspect.mechanism import lottery, mlp_maps, neuron_ipr, phase_alignment, phases
from grokking.models import build_model
from tests.helpers import FAST, run
from tests.inspect_cases import PHASES, addition_table, fourier_mlp

P, FREQS = 23, (2, 5, 9)


def accuracy(model, data) -> float:
    return (model(data.inputs).argmax(dim=1) == data.labels).float().mean().item()


def test_aligned_fourier_mlp_computes_addition_and_scores_zero():
    model, data = fourier_mlp(P, FREQS), addition_table(P)
    assert accuracy(model, data) == 1.0  # the construction is He et al.'s solution
    maps, readout = mlp_maps(model)
    assert neuron_ipr(maps, P).tolist() == pytest.approx([1.0] * len(FREQS) * PHASES)
    found = phase_alignment(maps, readout, P)
    assert found["freq"].tolist() == [k for k in FREQS for _ in range(PHASES)]
    assert found["misalignment"].max() < 1e-5
    phi = torch.remainder(found["phi"][0], 2 * math.pi)
    assert phi[:PHASES].tolist() == pytest.approx([2 * math.pi * j / PHASES for j in range(PHASES)], abs=1e-5)


def test_misaligned_phases_score_one_and_break_addition():
    model, data = fourier_mlp(P, FREQS, shift=math.pi / 2), addition_table(P)
    found = phase_alignment(*mlp_maps(model), P)
    assert found["misalignment"].tolist() == pytest.approx([1.0] * len(FREQS) * PHASES, abs=1e-5)
    assert accuracy(model, data) < 0.2


def test_phase_of_a_shifted_cosine():
    x = torch.arange(P, dtype=torch.float64)
    weights = torch.stack([3 * torch.cos(2 * math.pi * 4 * x / P + 1.0), torch.cos(2 * math.pi * 7 * x / P - 2.5)], dim=1)
    assert phases(weights, P, torch.tensor([4, 7])).tolist() == pytest.approx([1.0, -2.5])


def test_random_mlp_has_spread_spectra_and_random_phases():
    cfg = compose_config(["p=113", "model.activation=relu"])
    data = build_dataset(cfg)
    torch.manual_seed(0)
    maps, readout = mlp_maps(build_model(cfg, data))
    k = 56
    assert neuron_ipr(maps, 113).mean() == pytest.approx(2 / (k + 1), rel=0.1)  # Dirichlet(1, ..., 1) spectra
    assert phase_alignment(maps, readout, 113)["misalignment"].mean() == pytest.approx(2 / math.pi, abs=0.05)


def test_lottery_ticket_views():
    cfg = compose_config([f"p={P}", "model.init=single_freq", "model.width=64"])
    data = build_dataset(cfg)
    start = mlp_maps(initial_model(cfg, data))[0]
    same = lottery(start, start, P)
    assert same["kept"] == 1.0 and torch.equal(same["init_freq"], same["final_freq"])
    assert same["init_rank"].eq(1).all()
    swapped = [torch.roll(m, 1, dims=1) for m in start]  # each neuron ends with its neighbour's frequency
    moved = lottery(start, swapped, P)
    assert torch.equal(moved["final_freq"], torch.roll(same["init_freq"], 1))
    differs = moved["final_freq"] != moved["init_freq"]
    assert moved["kept"] == pytest.approx(1 - differs.float().mean().item()) and moved["init_rank"][differs].gt(1).all()


@pytest.mark.slow
def test_initial_model_is_the_training_init(tmp_path):
    """Snapshots start after step 1; with lr 1e-30 that step leaves every float32 weight as it was."""
    overrides = [*FAST, "steps=1", "lr=1e-30", "wd=0", "checkpoint_every=1"]
    run(tmp_path, overrides)
    stored = torch.load(tmp_path / "checkpoints" / "step_0000001.pt", weights_only=False)
    cfg = compose_config(overrides)
    rebuilt = initial_model(cfg, build_dataset(cfg)).state_dict()
    assert all(torch.equal(rebuilt[name], value) for name, value in stored["model"].items())


def test_models_without_the_maps_say_why():
    data = addition_table(P)
    assert "model=mlp" in mlp_maps(build_model(compose_config(["model=transformer", f"p={P}"]), data))
    assert "model.depth=1" in mlp_maps(build_model(compose_config([f"p={P}", "model.depth=2"]), data))
    assert isinstance(mlp_maps(build_model(compose_config([f"p={P}", "model.embedding=learned"]), data)), tuple)


def assert_he_et_al_mechanism(source) -> None:
    """A grokked one-hidden-layer MLP, as He et al. (2025) describe it, against random weights."""
    loaded = load_checkpoint(source)
    p, (maps, readout) = loaded.data.modulus, mlp_maps(loaded.model)
    k = (p - 1) // 2
    assert neuron_ipr(maps, p).mean() > 3 * 2 / (k + 1)  # spectra sparser than random ones
    assert phase_alignment(maps, readout, p)["misalignment"].median() < 0.15  # random: 2/pi
    ticket = lottery(mlp_maps(initial_model(loaded.cfg, loaded.data))[0], maps, p)
    assert ticket["kept"] > 5 / k  # chance: 1/K


@pytest.mark.slow
def test_a_grokked_mlp_shows_the_mechanism(tmp_path):
    """The quick recipe (quadratic MLP, (a+b) mod 47) groks by step 1000; measured there: IPR 0.40
    (random 0.08), median misalignment 0.05, 32 % of neurons keep their initial frequency."""
    summary = run(tmp_path, [*FAST, "steps=1000"])
    assert summary["val/acc"] > 0.99
    assert_he_et_al_mechanism(tmp_path)
