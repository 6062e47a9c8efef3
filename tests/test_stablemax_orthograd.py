"""StableMax cross-entropy and ⊥Grad (Prieto et al. 2025) against closed forms; loss precisions;
Adam's eps down to 1e-30; a pack mixing ⊥Grad on and off against its solo runs."""
from __future__ import annotations

import math

import pytest
import torch

from grokking.config import check_command_line
from grokking.errors import ConfigError
from grokking.optim import build_optimizer, orthogonalize_
from grokking.training.engines.build import build_member
from grokking.training.engines.packed import PackedRun
from grokking.training.engines.packed_optim import member_values, orthogonal_gradient
from grokking.training.engines.solo import SoloEngine
from grokking.training.loss import check_loss, per_example_loss
from tests.helpers import FAST, make_cfg, one_thread, run  # noqa: F401 (one_thread: a fixture)

CPU = torch.device("cpu")


def s(x: float) -> float:
    return x + 1 if x >= 0 else 1 / (1 - x)


def s_prime(x: float) -> float:
    return 1.0 if x >= 0 else 1 / (1 - x) ** 2


def random_logits(rows: int = 16, classes: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(rows, classes, generator=gen) * 5
    logits[0, :3] = torch.tensor([0.0, 1.0, -1.0])  # the branches' edges, where the authors add 1e-30
    return logits, torch.randint(0, classes, (rows,), generator=gen)


def test_stablemax_values_are_the_float64_formula():
    logits, labels = random_logits()
    got = per_example_loss(logits, labels, "stablemax", "float32")
    assert got.dtype == torch.float64  # whatever loss_dtype says, as the authors compute it
    for row, y, loss in zip(logits.double().tolist(), labels.tolist(), got.tolist()):
        assert loss == pytest.approx(-math.log(s(row[y]) / sum(s(z) for z in row)), rel=1e-14, abs=1e-15)


def test_stablemax_gradients_are_the_closed_form():
    """d/dz_j -log(s(z_y)/Σs) = s'(z_j)/Σs - [j = y] s'(z_y)/s(z_y), finite at z = 0 and z = 1."""
    logits, labels = random_logits()
    z = logits.double().requires_grad_()
    per_example_loss(z, labels, "stablemax", "float64").sum().backward()
    assert torch.isfinite(z.grad).all()
    for row, y, grad in zip(logits.double().tolist(), labels.tolist(), z.grad.tolist()):
        total = sum(s(v) for v in row)
        expected = [s_prime(v) / total - (j == y) * s_prime(v) / s(v) for j, v in enumerate(row)]
        assert grad == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_stablemax_refuses_a_half_precision_loss_dtype():
    check_loss("stablemax", "float64")
    with pytest.raises(ConfigError, match="loss_dtype=float16 does not apply to loss=stablemax"):
        check_loss("stablemax", "float16")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_cross_entropy_in_half_precision(dtype):
    """The loss is computed in the half type, so a margin that float32 resolves rounds to a zero loss."""
    logits = torch.tensor([[12.0, 0.0, 0.0], [2.0, 0.0, 0.0]])
    labels = torch.tensor([0, 0])
    half = per_example_loss(logits, labels, "ce", dtype)
    assert half.dtype == getattr(torch, dtype)
    assert half[0] == 0 and half[1] > 0
    assert per_example_loss(logits, labels, "ce", "float32")[0] > 0


def orthogonality(grad: torch.Tensor, param: torch.Tensor) -> float:
    return (torch.dot(grad.flatten(), param.flatten()) / (grad.norm() * param.norm())).item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_orthogonal_gradient_is_orthogonal_and_keeps_the_norm(dtype):
    gen = torch.Generator().manual_seed(1)
    shapes = [(5, 7), (13,), (3, 4, 6)]
    params = [torch.nn.Parameter(torch.randn(shape, generator=gen, dtype=dtype)) for shape in shapes]
    for p in params:  # a gradient with a large component along the weights, as after memorisation
        p.grad = 3 * p.detach() + torch.randn(p.shape, generator=gen, dtype=dtype)
    raw = [p.grad.clone() for p in params]
    orthogonalize_(params)
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    for p, g in zip(params, raw):
        assert abs(orthogonality(g, p)) > 0.5
        assert abs(orthogonality(p.grad, p)) < tol  # per tensor
        assert p.grad.norm().item() == pytest.approx(g.norm().item(), rel=tol)


def test_packed_orthogonal_gradient_is_the_solo_rule_per_member():
    gen = torch.Generator().manual_seed(2)
    param = torch.randn(4, 6, 5, generator=gen, dtype=torch.float64)
    grad = param + torch.randn(4, 6, 5, generator=gen, dtype=torch.float64)
    stacked = orthogonal_gradient(param, grad)
    for i in range(4):
        solo = torch.nn.Parameter(param[i].clone())
        solo.grad = grad[i].clone()
        orthogonalize_([solo])
        torch.testing.assert_close(stacked[i], solo.grad, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_every_optimizer_steps_with_the_orthogonal_gradient(optimizer):
    """The step of each optimizer uses the gradient made orthogonal to the weights it had (norm
    kept); plain SGD's update is then orthogonal to them too."""
    cfg = make_cfg([f"optimizer={optimizer}", "wd=0", "optimizer.orthogonal=true", "optimizer.momentum=0"
                    if optimizer == "sgd" else "optimizer.eps=1e-8"]).optimizer
    gen = torch.Generator().manual_seed(3)
    param = torch.nn.Parameter(torch.randn(20, 10, generator=gen, dtype=torch.float64))
    param.grad = 2 * param.detach() + torch.randn(20, 10, generator=gen, dtype=torch.float64)
    before, raw = param.detach().clone(), param.grad.clone()
    build_optimizer(cfg, [param]).step()
    assert abs(orthogonality(param.grad, before)) < 1e-12
    assert param.grad.norm().item() == pytest.approx(raw.norm().item(), rel=1e-12)
    if optimizer == "sgd":
        assert abs(orthogonality(param.detach() - before, before)) < 1e-12


def solo_run(cfg, steps: int) -> tuple[list[float], dict]:
    engine = SoloEngine(build_member(cfg, CPU, fresh=True), CPU)
    losses = [engine.step([True]).item() for _ in range(steps)]
    return losses, engine.model.state_dict()


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_a_pack_mixing_orthogonal_on_and_off_matches_its_solo_runs(optimizer, one_thread):
    """Members with and without ⊥Grad, 20 steps: each member's losses and weights are its solo run's."""
    base = FAST + [f"optimizer={optimizer}", "wd=0", "lr=3e-3" if optimizer != "sgd" else "lr=0.5"]
    cfgs = [make_cfg(base + ["optimizer.orthogonal=true"]), make_cfg(base + ["optimizer.orthogonal=false", "seed=1"])]
    pack = PackedRun.build(cfgs, CPU)
    packed = torch.stack([pack.step([True, True]) for _ in range(20)]).double()
    solo = [solo_run(cfg, 20) for cfg in cfgs]
    for i, (losses, weights) in enumerate(solo):
        torch.testing.assert_close(packed[:, i], torch.tensor(losses, dtype=torch.float64), rtol=1e-5, atol=0)
        for name, tensor in weights.items():
            # 1e-5: the packed step runs torch's fused Adam kernel, which rounds a few operations
            # differently from the solo step (docs/packing_speed.md); 20 steps move a weight ~0.06
            torch.testing.assert_close(pack.model_of(i).state_dict()[name], tensor, rtol=1e-4, atol=1e-5)
    assert solo_run(make_cfg(base + ["optimizer.orthogonal=false"]), 20)[0] != solo[0][0]  # ⊥Grad changed the numbers


def test_adam_eps_down_to_1e_30(tmp_path, one_thread):
    """Accepted on the command line, held non-zero in the packed optimizer's float32 table, and a
    pack of eps 1e-30 and 1e-8 matches its solo runs."""
    assert member_values({"eps": [1e-30]}, torch.zeros(1))["eps"].item() == pytest.approx(1e-30, rel=1e-6)
    cfgs = [make_cfg(FAST + ["optimizer.eps=1e-30", "wd=0"]), make_cfg(FAST + ["optimizer.eps=1e-8", "wd=0"])]
    pack = PackedRun.build(cfgs, CPU)
    packed = torch.stack([pack.step([True, True]) for _ in range(20)]).double()
    for i, cfg in enumerate(cfgs):
        torch.testing.assert_close(packed[:, i], torch.tensor(solo_run(cfg, 20)[0], dtype=torch.float64),
                                   rtol=1e-5, atol=0)
    check_command_line(["optimizer.eps=1e-30", "loss_dtype=bfloat16", "loss=stablemax"])
    with pytest.raises(ConfigError, match="optimizer.eps=0 is invalid; it must be > 0"):
        check_command_line(["optimizer.eps=0"])
    summary = run(tmp_path, FAST + ["steps=3", "optimizer.eps=1e-30", "loss_dtype=bfloat16"])
    assert summary["status"] == "completed" and summary["train/loss"] > 0
