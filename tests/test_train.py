"""The training loop and its run record: real (small) trainings on the CPU."""
import json

import pytest
import torch

from grokking.errors import ConfigError
from tests.helpers import FAST, metrics, run

SHORT = FAST + ["eval_every=10", "checkpoint_every=20"]
VARIANTS = {
    "full_batch_adamw": [],
    "minibatch_grokfast_ema": ["batch_size=128", "grokfast=ema"],
    "sgd_warmup_grokfast_ma": ["optimizer=sgd", "lr=0.05", "optimizer.warmup_steps=30", "grokfast=ma", "grokfast.window=5"],
    "transformer_log_schedule": ["model=transformer", "model.width=32", "model.d_mlp=64", "model.layernorm=pre",
                                 "batch_size=256", "eval_schedule=log", "loss_dtype=float64"],
}


def model_state(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["model"]


def assert_same_run(dir_a, dir_b):
    assert metrics(dir_a) == metrics(dir_b)
    a, b = model_state(dir_a), model_state(dir_b)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_grokking_run_memorises_then_generalises(tmp_path):
    """The measured recipe: (a+b) mod 47, quadratic MLP, AdamW wd 1, full batch."""
    summary = run(tmp_path, FAST + ["steps=1500", "early_stop=0.99"])
    memorised = [r for r in metrics(tmp_path) if r["train/acc"] >= 0.99 and r["val/acc"] < 0.1]
    assert memorised and memorised[0]["step"] <= 300
    assert summary["steps_to_grok"] is not None and summary["steps_to_grok"] <= 1500
    assert summary["grok_gap"] == summary["steps_to_grok"] - summary["steps_to_memorize"] > 300
    assert summary["status"] == "completed" and summary["step"] == summary["steps_to_grok"]  # early stop


def test_early_stop_on_the_validation_loss_stops_at_the_first_evaluation_below_it(tmp_path):
    summary = run(tmp_path, FAST + ["steps=1500", "early_stop_loss=0.5"])
    losses = [r["val/loss"] for r in metrics(tmp_path)]
    assert losses[-1] < 0.5 and min(losses[:-1]) >= 0.5
    assert summary["status"] == "completed" and summary["step"] < 1500


@pytest.mark.parametrize("variant", VARIANTS)
def test_extending_a_finished_run_matches_one_long_run(tmp_path, variant):
    overrides = SHORT + VARIANTS[variant]
    run(tmp_path / "long", overrides + ["steps=100"])
    run(tmp_path / "extended", overrides + ["steps=50"])
    summary = run(tmp_path / "extended", overrides + ["steps=100"])
    assert summary["step"] == 100
    assert_same_run(tmp_path / "long", tmp_path / "extended")
    steps = [r["step"] for r in metrics(tmp_path / "extended")]
    assert len(steps) == len(set(steps)) and steps == sorted(steps)


def test_same_seed_same_numbers_other_seed_other_numbers(tmp_path):
    run(tmp_path / "a", SHORT + ["steps=30"])
    run(tmp_path / "b", SHORT + ["steps=30"])
    run(tmp_path / "c", SHORT + ["steps=30", "seed=1"])
    assert metrics(tmp_path / "a") == metrics(tmp_path / "b") != metrics(tmp_path / "c")


def test_split_seed_is_independent_of_model_seed(tmp_path):
    from grokking.data import build_dataset
    from tests.helpers import make_cfg

    same_split = [build_dataset(make_cfg(FAST + [f"seed={s}"])).train_idx for s in (0, 1)]
    assert torch.equal(*same_split)
    other = build_dataset(make_cfg(FAST + ["split.seed=1"])).train_idx
    assert not torch.equal(same_split[0], other)
    assert len(build_dataset(make_cfg(FAST + ["split.n_train=100"])).train_idx) == 100


def test_a_changed_config_is_refused_and_the_run_kept(tmp_path):
    run(tmp_path, SHORT + ["steps=20"])
    before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match=r"optimizer.weight_decay: 1.0 -> 0.5.*use another out_dir"):
        run(tmp_path, SHORT + ["steps=40", "wd=0.5"])
    assert (tmp_path / "metrics.jsonl").read_text() == before
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "completed"


def test_rerunning_a_finished_run_trains_nothing(tmp_path):
    first = run(tmp_path, SHORT + ["steps=20"])
    again = run(tmp_path, SHORT + ["steps=20"])
    assert again["step"] == first["step"] == 20
    assert [r["step"] for r in metrics(tmp_path)] == [0, 10, 20]


def test_checkpoints_and_summary(tmp_path):
    summary = run(tmp_path, SHORT + ["steps=45"])
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["last.pt", "step_0000020.pt", "step_0000040.pt", "step_0000045.pt"]
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "steps_to_memorize", "steps_to_grok",
                "grok_gap", "wall_time_s", "device"):
        assert key in summary
    assert summary["device"] == "cpu" and summary["status"] == "completed"


def test_init_from_starts_from_another_runs_weights(tmp_path):
    run(tmp_path / "sub", SHORT + ["op=sub", "steps=20"])
    summary = run(tmp_path / "tuned", SHORT + ["op=x2_y", "steps=10", f"init_from={tmp_path / 'sub'}"])
    first = metrics(tmp_path / "tuned")[0]
    assert summary["status"] == "completed" and first["weight_norm"] == pytest.approx(metrics(tmp_path / "sub")[-1]["weight_norm"])
    with pytest.raises(ConfigError, match="does not fit this model"):
        run(tmp_path / "bad", SHORT + ["p=53", "steps=10", f"init_from={tmp_path / 'sub'}"])
    with pytest.raises(ConfigError, match="init_from=.*nowhere: no checkpoint there"):
        run(tmp_path / "bad2", SHORT + ["steps=10", f"init_from={tmp_path / 'nowhere'}"])


@pytest.mark.parametrize("override, message", [  # combinations, found when the run starts
    (["split.n_train=99999"], "split.n_train=99999 is out of range; allowed: 1 to 2209"),
    (["device=tpu"], "device=tpu is not a device"),
])
def test_bad_settings_fail_and_leave_a_failed_record(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        run(tmp_path, SHORT + override)
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "failed"


def test_mse_loss_and_s5_tables_train(tmp_path):
    summary = run(tmp_path / "mse", SHORT + ["steps=20", "loss=mse"])
    assert summary["status"] == "completed"
    s5 = run(tmp_path / "s5", SHORT + ["op=s5_xy", "steps=10", "frac=0.3"])
    assert s5["status"] == "completed" and s5["step"] == 10
