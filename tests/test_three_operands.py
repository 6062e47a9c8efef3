"""Three-operand tables (seed 000, section 9.1): exact labels, the memory limit on p, both models,
the Fourier metrics per operand, packs."""
from __future__ import annotations

import itertools

import pytest
import torch
from omegaconf import OmegaConf

from grokking.config import check_command_line
from grokking.errors import ConfigError
from grokking.ops import MAX_THREE_OPERAND_P, make_table
from grokking.report.cache import load_run
from grokking.report.tabs import build_tabs
from grokking.training.engines.packed import PackedRun
from tests.helpers import make_cfg, metrics, run

SMALL = ["p=11", "progress=none", "report=false"]


def table(name: str, p: int, **extra):
    return make_table(OmegaConf.create({"name": name, **extra}), p)


@pytest.mark.parametrize("name, expr, fn", [
    ("add3", None, lambda a, b, c, p: (a + b + c) % p),
    ("expr3", "a*b + c", lambda a, b, c, p: (a * b + c) % p),
    ("expr3", "a**2 - 3*b*c + 1", lambda a, b, c, p: (a * a - 3 * b * c + 1) % p),
])
def test_all_p_cubed_labels_match_a_direct_formula(name, expr, fn):
    p = 13
    t = table(name, p, **({"expr": expr} if expr else {}))
    assert t.operands.shape == (p**3, 3) and t.n_values == p
    expected = {(a, b, c): fn(a, b, c, p) for a, b, c in itertools.product(range(p), repeat=3)}
    assert {tuple(map(int, row)): int(y) for row, y in zip(t.operands, t.labels)} == expected


def test_division_drops_the_zero_divisors():
    p = 7
    t = table("expr3", p, expr="a / b + c")
    assert len(t.labels) == p * p * (p - 1)
    for (a, b, c), y in zip(t.operands.tolist(), t.labels.tolist()):
        assert b != 0 and (y - c) * b % p == a


def test_p_beyond_the_memory_limit_is_one_line():
    refusal = f"p=127 makes op add3's table 127\\*\\*3 = 2048383 rows, about 18 GB.*allowed: p <= {MAX_THREE_OPERAND_P}"
    with pytest.raises(ConfigError, match=refusal):
        table("add3", 127)
    assert len(table("add3", 3).labels) == 27
    with pytest.raises(ConfigError, match="'d' is not allowed; use a, b, c"):
        table("expr3", 5, expr="a + d")
    with pytest.raises(ConfigError, match="'c' is not allowed; use a, b,"):
        table("expr", 5, expr="a + c")


def test_the_mlp_reads_three_one_hots_and_has_fourier_metrics_per_operand(tmp_path):
    summary = run(tmp_path, SMALL + ["op=add3", "steps=20", "model.width=64"])
    first = metrics(tmp_path)[0]
    assert summary["status"] == "completed"
    assert 0 < first["fourier_ipr"] <= 1 and len(first["fourier/top_freqs"]) == 5
    assert first["metrics/skipped"] == {"restricted": "needs a one-layer transformer"}
    power = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)["metrics"]["fourier_power"]
    assert power.shape == (3, 5)  # operands, (p - 1) / 2 frequencies
    tabs = {t.title: t for t in build_tabs(load_run(tmp_path, progress=False))}
    for title in ("Model output", "Neurons", "Mechanism"):  # views of the (a, b) table say why they are not drawn
        assert "the table has 3 operands, and this view draws pairs (a, b)" in tabs[title].absent, title
    assert tabs["Fourier"].figures and not tabs["Fourier"].absent


def test_the_transformer_reads_a_b_c_and_refuses_a_two_operand_sequence(tmp_path):
    small = SMALL + ["op=add3", "model=transformer", "model.width=32", "model.d_mlp=64", "steps=5"]
    with pytest.raises(ConfigError, match="model.sequence='a b =' reads 2 operands and this op has 3; "
                                          "allowed: 'a b c =', 'a ∘ b ∘ c ='"):
        run(tmp_path / "two", small)
    run(tmp_path / "three", small + ['model.sequence="a ∘ b ∘ c ="'])
    first = metrics(tmp_path / "three")[0]
    assert 0 < first["fourier_ipr"] <= 1
    assert first["metrics/skipped"]["restricted"] == "needs op=add with an odd modulus"
    check_command_line(["model=transformer", 'model.sequence="a b c ="', "op=expr3", 'op.expr="a*b + c"'])


def test_three_operand_ops_of_one_table_shape_share_a_pack():
    cfgs = [make_cfg(SMALL + ["op=add3", "model.width=32"]),
            make_cfg(SMALL + ["op=expr3", "op.expr=a*b - c", "model.width=32", "seed=1"])]
    pack = PackedRun.build(cfgs, torch.device("cpu"))
    losses = torch.stack([pack.step([True, True]) for _ in range(3)])
    assert torch.isfinite(losses).all() and pack.inputs.shape == (2, 11**3, 3)
