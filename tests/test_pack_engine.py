"""The packed engine against solo runs: same start, same losses, same checkpoints, frozen members.

The solo reference is ``solo_losses``: a solo run's set-up and loop step by step (the same build
functions in the same order), which records the training loss of every step; ``train`` itself is
used where its files are compared (checkpoints, evaluation records).
"""
from __future__ import annotations

import copy

import pytest
import torch
from omegaconf import OmegaConf

from grokking.optim import build_grad_filter, build_optimizer, set_warmup_lr
from grokking.data import build_dataset
from grokking.models import build_model
from grokking.training.batches import Batches
from grokking.training.engines.packed import PackedRun
from grokking.training.evaluate import evaluate
from grokking.training.loss import per_example_loss
from tests.helpers import FAST, make_cfg, run

CPU = torch.device("cpu")
TRANSFORMER = ["model=transformer", "p=23", "frac=0.5", "model.width=32", "model.d_mlp=64", "progress=none"]


def configs(base: list[str], variants: list[str]) -> list:
    return [make_cfg(base + v.split()) for v in variants]


def solo_losses(cfg, steps: int, state: dict | None = None) -> list[float]:
    """The training loss of each of ``steps`` steps of the solo run (from ``state`` if given)."""
    data = build_dataset(cfg)
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data)
    optimizer = build_optimizer(cfg.optimizer, model.parameters())
    grad_filter = build_grad_filter(cfg.grokfast, model.parameters())
    batches = Batches(len(data.train_idx), cfg.batch_size or len(data.train_idx), CPU)
    batches.generator.manual_seed(cfg.seed)
    start = 0
    if state is not None:
        start = state["step"]
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if grad_filter:
            grad_filter.load_state_dict(state["grad_filter"])
        batches.load_state_dict(state["batches"])
    x_train, y_train = data.inputs[data.train_idx], data.labels[data.train_idx]
    full_batch = cfg.batch_size is None or cfg.batch_size >= len(data.train_idx)
    warmup = OmegaConf.to_container(cfg.optimizer, resolve=True)
    losses = []
    for step in range(start, start + steps):
        set_warmup_lr(optimizer, warmup, step)
        idx = slice(None) if full_batch else batches.next()
        loss = per_example_loss(model(x_train[idx]), y_train[idx], cfg.loss, cfg.loss_dtype).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_filter:
            grad_filter.apply()
        optimizer.step()
        losses.append(loss.item())
    return losses


def pack_losses(pack: PackedRun, steps: int) -> torch.Tensor:
    """(steps, members) training losses of ``steps`` steps with every member active."""
    return torch.stack([pack.step([True] * len(pack)) for _ in range(steps)]).double()


def assert_losses_match(cfgs, steps: int = 50) -> None:
    pack = PackedRun.build(cfgs, CPU)
    packed = pack_losses(pack, steps)
    for i, cfg in enumerate(cfgs):
        solo = torch.tensor(solo_losses(cfg, steps), dtype=torch.float64)
        torch.testing.assert_close(packed[:, i], solo, rtol=1e-5, atol=0, msg=lambda m: f"member {i}: {m}")


def test_members_start_as_their_solo_runs():
    cfgs = configs(FAST, ["seed=0", "seed=1 split.seed=3", "frac=0.4 model.init_scale=2.0"])
    pack = PackedRun.build(cfgs, CPU)
    for i, cfg in enumerate(cfgs):
        data = build_dataset(cfg)
        torch.manual_seed(cfg.seed)
        solo = build_model(cfg, data)
        for name, tensor in solo.state_dict().items():
            assert torch.equal(pack.model_of(i).state_dict()[name], tensor), (i, name)
        assert torch.equal(pack.train_idx[i], data.train_idx) and torch.equal(pack.val_idx[i], data.val_idx)


def test_pack_of_four_seeds_matches_solo_runs():
    assert_losses_match(configs(FAST, [f"seed={s}" for s in range(4)]))


def test_members_with_other_weight_decay_and_train_size():
    assert_losses_match(configs(FAST, ["wd=0.3 frac=0.4", "wd=1.0 frac=0.5", "wd=0.3 frac=0.5 seed=1"]))


@pytest.mark.slow
def test_transformer_pack():
    assert_losses_match(configs(TRANSFORMER, ["seed=0", "seed=1 lr=3e-3"]), steps=30)


@pytest.mark.slow
@pytest.mark.parametrize("variants", [
    ["batch_size=64 seed=0", "batch_size=64 seed=1 frac=0.4", "batch_size=64 seed=2 split.seed=5"],
    ["optimizer=adam seed=0 wd=0.1", "optimizer=adam seed=1 optimizer.betas=[0.8,0.99] optimizer.eps=1e-6"],
    ["optimizer=sgd lr=0.5 wd=1e-3", "optimizer=sgd lr=0.2 optimizer.momentum=0.0",
     "optimizer=sgd lr=0.1 optimizer.nesterov=true"],
    ["optimizer.warmup_steps=10", "optimizer.warmup_steps=0 seed=1", "optimizer.warmup_steps=30 lr=3e-3"],
    ["grokfast=ema", "grokfast=ema grokfast.alpha=0.9 grokfast.lamb=1.0 seed=1"],
    ["grokfast=ma grokfast.window=7", "grokfast=ma grokfast.window=7 grokfast.lamb=2.0 seed=1"],
], ids=["minibatches", "adam", "sgd", "warmup", "grokfast_ema", "grokfast_ma"])
def test_member_keys_match_solo_runs(variants):
    assert_losses_match(configs(FAST, variants), steps=50)


def test_member_gather_is_each_members_solo_gather():
    """The packed first layer: every member's rows of its own table, summed over the operands, bit
    for bit as the solo model's gather; its backward is the solo gather's backward (a sum of the
    same rows, up to the order of the additions)."""
    from grokking.training.engines.stacked import MemberGather

    torch.manual_seed(0)
    tables = torch.randn(3, 2 * 23, 16, requires_grad=True)
    rows = torch.randint(0, 23, (3, 40, 2)) + torch.tensor([0, 23])
    out = MemberGather.apply(tables, rows)
    grad = torch.randn_like(out)
    out.backward(grad)
    for m in range(3):
        table = tables.detach()[m].clone().requires_grad_()
        solo = torch.nn.functional.embedding(rows[m, :, 0], table) + torch.nn.functional.embedding(rows[m, :, 1], table)
        solo.backward(grad[m])
        assert torch.equal(out[m], solo)
        torch.testing.assert_close(tables.grad[m], table.grad, rtol=1e-6, atol=1e-6)


def test_the_gathers_two_backwards_agree():
    """The GPU's backward of the gather (a one-hot product, deterministic there) gives the CPU's
    (a scatter-add), run here on the CPU."""
    from grokking.training.engines.stacked import onehot_product_grad, scatter_grad

    torch.manual_seed(0)
    grad = torch.randn(3, 40, 16, dtype=torch.float64)
    rows = torch.randint(0, 23, (3, 40, 2)) + torch.tensor([0, 23])
    torch.testing.assert_close(onehot_product_grad(grad, rows, 46), scatter_grad(grad, rows, 46))


@pytest.mark.parametrize("square", [True, False])
def test_member_linear_is_autograds_linear_of_the_activation(square):
    """The packed layer (with the quadratic activation folded in, or not) gives autograd's values
    and gradients of ``act(h) @ weight.T`` per member."""
    from grokking.training.engines.stacked import MemberLinear

    torch.manual_seed(0)
    h = torch.randn(3, 40, 16, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 5, 16, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(3, 40, 5, dtype=torch.float64)
    out = MemberLinear.apply(h, weight, square)
    got = torch.autograd.grad(out, (h, weight), grad)
    reference = torch.bmm(h * h if square else h, weight.transpose(1, 2))
    expected = torch.autograd.grad(reference, (h, weight), grad)
    torch.testing.assert_close(out, reference)
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e)


def test_deeper_and_other_activations_match_solo():
    """The packed MLP with two hidden layers, biases and a non-quadratic activation."""
    assert_losses_match(configs(["p=23", "frac=0.5", "progress=none", "model.width=64", "model.depth=2",
                                 "model.bias=true", "model.activation=gelu"], ["seed=0", "seed=1 wd=0.3"]), steps=20)


def test_evaluation_and_checkpoint_match_the_solo_run(tmp_path):
    """After 10 steps a member's evaluation and its state equal the solo run's record and last.pt."""
    overrides = FAST + ["steps=10", "eval_every=10", "grokfast=ema", "batch_size=128", "metrics.every=0"]
    summary = run(tmp_path / "solo", overrides)
    checkpoint = torch.load(tmp_path / "solo" / "checkpoints" / "last.pt", weights_only=False)
    pack = PackedRun.build([make_cfg(overrides), make_cfg(overrides + ["seed=1"])], CPU)
    pack_losses(pack, 10)
    for key in ("train/loss", "train/acc", "val/loss", "val/acc"):
        assert pack.evaluate([0, 1], [False, False])[0][0][key] == pytest.approx(summary[key], rel=1e-5), key
    state = pack.member_state(0)
    assert state["step"] == checkpoint["step"] == 10
    for name, tensor in checkpoint["model"].items():
        torch.testing.assert_close(state["model"][name], tensor, rtol=1e-5, atol=1e-7)
    solo_opt, packed_opt = checkpoint["optimizer"], state["optimizer"]
    assert packed_opt["param_groups"] == solo_opt["param_groups"]
    for k, held in solo_opt["state"].items():
        assert held.keys() == packed_opt["state"][k].keys()
        for key, value in held.items():
            torch.testing.assert_close(packed_opt["state"][k][key], value, rtol=1e-4, atol=1e-9)
    for a, b in zip(state["grad_filter"]["avg"], checkpoint["grad_filter"]["avg"]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-9)
    assert torch.equal(state["batches"]["generator"], checkpoint["batches"]["generator"])
    assert torch.equal(state["batches"]["order"], checkpoint["batches"]["order"])
    assert state["batches"]["pos"] == checkpoint["batches"]["pos"]


@pytest.mark.parametrize("base, variants", [
    (FAST, ["seed=0", "seed=1 frac=0.3 op=sub"]),
    (FAST + ["model.depth=2", "model.width=64", "model.bias=true"], ["seed=0", "seed=1 op=mul"]),
    (TRANSFORMER, ["seed=0", "seed=1 split.seed=2"]),
], ids=["mlp", "deep_mlp", "transformer"])
def test_evaluation_equals_the_solo_evaluation_of_each_member(base, variants):
    """Records, logits and features of the batched evaluation are the solo ``evaluate``'s."""
    cfgs = configs(base, variants)
    pack = PackedRun.build(cfgs, CPU)
    pack_losses(pack, 5)
    logits, feats = pack.outputs(features=True)
    records = pack.split_values(logits)
    for i, cfg in enumerate(cfgs):
        solo, solo_logits, solo_feats = evaluate(pack.model_of(i), build_dataset(cfg), cfg, features=True)
        assert records[i] == pytest.approx(solo, rel=1e-6)
        torch.testing.assert_close(logits[i], solo_logits, rtol=1e-5, atol=1e-5)
        assert feats.keys() == solo_feats.keys()
        for key, value in solo_feats.items():
            torch.testing.assert_close(feats[key][i], value, rtol=1e-5, atol=1e-5)


def test_frozen_members_stay_untouched():
    pack = PackedRun.build(configs(FAST, ["grokfast=ma grokfast.window=3 batch_size=100 seed=0",
                                          "grokfast=ma grokfast.window=3 batch_size=100 seed=1"]), CPU)
    pack_losses(pack, 4)
    before = copy.deepcopy(pack.member_state(1))
    losses = pack.step([True, False])
    after = pack.member_state(1)
    assert torch.isnan(losses[1]) and not torch.isnan(losses[0])
    assert pack.steps == [5, 4]
    assert_same_state(before, after)
    assert not torch.equal(pack.member_state(0)["model"]["token_weight"], before["model"]["token_weight"])


def assert_same_state(a, b) -> None:
    """Bit for bit, through nested dicts and lists."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_state(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_state(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


def test_pack_resumes_bit_exactly_from_member_states(tmp_path):
    """Members saved to files (after some frozen steps) and loaded into a new pack continue exactly."""
    cfgs = configs(FAST, ["grokfast=ma grokfast.window=4 batch_size=200 seed=0",
                          "grokfast=ma grokfast.window=4 batch_size=200 seed=1 optimizer.warmup_steps=20"])
    pack = PackedRun.build(cfgs, CPU)
    pack_losses(pack, 6)
    for _ in range(3):
        pack.step([False, True])
    for i in range(len(pack)):
        torch.save(pack.member_state(i), tmp_path / f"member{i}.pt")
    uninterrupted = pack_losses(pack, 8)
    resumed = PackedRun.build(cfgs, CPU)
    for i in range(len(resumed)):
        resumed.load_member_state(i, torch.load(tmp_path / f"member{i}.pt", weights_only=False))
    assert resumed.steps == [6, 9]
    assert torch.equal(pack_losses(resumed, 8), uninterrupted)
    for i in range(len(pack)):
        assert_same_state(resumed.member_state(i), pack.member_state(i))


def test_a_member_continues_solo_from_its_state():
    cfgs = configs(FAST, ["optimizer=sgd lr=0.3 seed=0", "optimizer=sgd lr=0.3 seed=1 grokfast=none"])
    pack = PackedRun.build(cfgs, CPU)
    pack_losses(pack, 10)
    state = pack.member_state(1)
    packed = pack_losses(pack, 10)[:, 1]
    solo = torch.tensor(solo_losses(cfgs[1], 10, state), dtype=torch.float64)
    torch.testing.assert_close(packed, solo, rtol=1e-5, atol=0)


def test_members_must_share_shape_keys():
    from grokking.errors import ConfigError

    with pytest.raises(ConfigError, match="optimizer.name differs"):
        PackedRun.build(configs(FAST, ["optimizer=adamw", "optimizer=sgd"]), CPU)
    with pytest.raises(ConfigError, match="shape"):
        PackedRun.build([make_cfg(FAST), make_cfg(["p=53", "progress=none"])], CPU)


STATIC_VARIANTS = ["optimizer.warmup_steps=5 seed=0", "optimizer.warmup_steps=0 seed=1 wd=0.3 lr=3e-3"]


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
def test_static_step_gives_the_eager_step(optimizer):
    """The body a GPU captures (the optimizer's scalars copied into a fixed table) steps a
    full-batch pack exactly as the eager step does, warm-up and bias corrections included."""
    from grokking.training.engines.capture import StaticStep

    cfgs = configs(FAST + [f"optimizer={optimizer}"], STATIC_VARIANTS)
    static, eager = PackedRun.build(cfgs, CPU), PackedRun.build(cfgs, CPU)
    assert static.static_step is None  # a CPU steps eagerly; the GPU's body, run here:
    static.static_step = StaticStep(static)
    eager.optimizer.fused = False  # the table-driven step a GPU takes eagerly
    assert torch.equal(pack_losses(static, 20), pack_losses(eager, 20))
    for i in range(len(cfgs)):
        assert_same_state(static.member_state(i), eager.member_state(i))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (CI has none)")
def test_captured_step_gives_the_eager_step_on_a_gpu():
    cuda = torch.device("cuda")
    cfgs = configs(FAST + ["device=cuda"], STATIC_VARIANTS)
    captured, eager = PackedRun.build(cfgs, cuda), PackedRun.build(cfgs, cuda)
    eager.static_step = None
    torch.testing.assert_close(pack_losses(captured, 20), pack_losses(eager, 20), rtol=1e-6, atol=0)
    assert captured.static_step.graph is not None


def test_member_chunks_give_the_whole_pack_step(monkeypatch):
    """The step in chunks of one member (as a large pack is stepped on a CPU) gives the step of
    the whole pack at once."""
    import grokking.training.engines.packed as packed

    cfgs = configs(FAST, ["seed=0", "seed=1 frac=0.4", "seed=2"])
    monkeypatch.setattr(packed, "CHUNK_FLOATS", 2**40)
    whole = PackedRun.build(cfgs, CPU)
    assert len(whole.chunks(len(whole.inputs[0]))) == 1
    expected = pack_losses(whole, 20)
    monkeypatch.setattr(packed, "CHUNK_FLOATS", 1)
    chunked = PackedRun.build(cfgs, CPU)
    assert len(chunked.chunks(len(chunked.inputs[0]))) == 3
    torch.testing.assert_close(pack_losses(chunked, 20), expected, rtol=1e-6, atol=0)
