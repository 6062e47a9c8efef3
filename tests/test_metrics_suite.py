"""The MetricSuite: settings, schedule, skipped metrics, checkpoint extras, and one real run."""
import math
import re

import pytest
import torch
from omegaconf import OmegaConf

from grokking.data import Dataset, build_dataset
from grokking.config import check_command_line
from grokking.errors import ConfigError
from grokking.metrics import SETTINGS_FILE, MetricSuite, load_settings
from grokking.models import build_model
from grokking.training.evaluate import evaluate
from tests.helpers import FAST, make_cfg, metrics, run


def suite_for(overrides: list[str], **settings):
    cfg = make_cfg(overrides)
    data = build_dataset(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, data)
    suite = MetricSuite(cfg, model, data, load_settings(cfg, **settings) if settings else None)
    _, logits, feats = evaluate(model, data, cfg, features=suite.wants_features)
    return suite, logits, feats


def test_settings_default_to_the_config_group_file():
    defaults = OmegaConf.load(SETTINGS_FILE)
    defaults.pop("defaults")
    assert load_settings(OmegaConf.create({})) == defaults
    assert load_settings(make_cfg(["metrics.rank_every=3"])).rank_every == 3


def test_unknown_settings_of_an_old_run_are_refused():
    with pytest.raises(ConfigError, match="unknown metrics.rank_evry"):
        load_settings(OmegaConf.create({"metrics": {"rank_evry": 2}}))


@pytest.mark.parametrize("override, message", [
    ("metrics.rank_evry=2", "there is no setting metrics.rank_evry; did you mean rank_every"),
    ("metrics.every=-1", "metrics.every=-1 is invalid; it must be >= 0"),
    ("metrics.probe_every=0.5", "metrics.probe_every=0.5 is not an integer"),
    ("metrics.fourier_every=true", "metrics.fourier_every=True is not an integer"),
])
def test_bad_settings_are_refused(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_command_line([override])


def test_every_zero_turns_everything_off():
    suite, logits, feats = suite_for(["p=11", "op=s5_xy", "steps=10"], every=0)
    assert suite(0, logits, feats) == {} and not suite.wants_features
    assert suite.checkpoint_extras() == {}


def test_groups_follow_their_period_and_an_unscheduled_final_step_gets_all():
    suite, logits, feats = suite_for(["p=11", "steps=105", "eval_every=10"], every=2, rank_every=3, probe_every=1)
    keys = {step: set(suite(step, logits, feats)) for step in [*range(0, 101, 10), 105]}
    assert [s for s in keys if "weight_norm" in keys[s]] == [0, 20, 40, 60, 80, 100, 105]
    assert [s for s in keys if "feature_rank/layer1" in keys[s]] == [0, 60, 105]
    assert [s for s in keys if "probe_acc/layer1" in keys[s]] == [0, 20, 40, 60, 80, 100, 105]


def test_mlp_on_a_modular_op_gets_rank_ipr_norms_and_a_note_for_restricted_loss():
    suite, logits, feats = suite_for(["p=23", "op=x2_y", "model.width=64", "steps=10"], probe_every=1)
    out = suite(0, logits, feats)
    assert out["weight_norm"] == pytest.approx(math.hypot(out["norm/token"], out["norm/readout"]))
    assert 0 < out["fourier_ipr"] < 0.3 and len(out["fourier/top_freqs"]) == 5
    assert out["feature_rank/layer1"] == 2 * 23 - 1 - 1  # f(a) + g(b), centred
    assert 0 <= out["probe_acc/layer1"] <= 1
    assert set(out["metrics/skipped"]) == {"restricted"}
    assert suite.checkpoint_extras()["fourier_power"].shape == (2, 11)


def test_s5_skips_fourier_and_restricted_loss_with_notes():
    suite, logits, feats = suite_for(["op=s5_xy", "model.width=64", "steps=10"])
    out = suite(0, logits, feats)
    assert "fourier_ipr" not in out and "restricted_loss" not in out and "feature_rank/layer1" in out
    assert "modulus" in out["metrics/skipped"]["fourier"]
    assert suite.checkpoint_extras() == {}


def test_vector_inputs_get_rank_probe_and_norms():
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (90,), generator=g)
    inputs = torch.nn.functional.one_hot(labels, 3).float() + 0.1 * torch.randn(90, 3, generator=g)
    data = Dataset(inputs=inputs, labels=labels, train_idx=torch.arange(60), val_idx=torch.arange(60, 90), n_classes=3)
    cfg = make_cfg(["model.depth=2", "model.width=16", "model.bias=true", "steps=10"])
    model = build_model(cfg, data)
    suite = MetricSuite(cfg, model, data, load_settings(cfg, probe_every=1))
    _, logits, feats = evaluate(model, data, cfg, features=suite.wants_features)
    out = suite(0, logits, feats)
    assert {"feature_rank/layer1", "feature_rank/layer2", "probe_acc/layer2", "norm/hidden.0"} <= set(out)
    assert out["probe_acc/layer1"] > 0.9
    assert "fourier" in out["metrics/skipped"]


@pytest.mark.slow
def test_a_grokking_run_concentrates_fourier_power_and_sheds_weight_norm(tmp_path):
    summary = run(tmp_path, FAST + ["steps=2500", "eval_every=50", "checkpoint_every=2500"])
    records = metrics(tmp_path)
    assert summary["steps_to_grok"] is not None
    assert records[-1]["fourier_ipr"] > 4 * records[0]["fourier_ipr"]
    assert records[0]["fourier_ipr"] == pytest.approx(2 / (23 + 1), rel=0.2)  # ~ random weights
    after = [r["weight_norm"] for r in records if r["step"] >= summary["steps_to_memorize"]]
    assert after[-1] < 0.95 * max(after)
    assert "feature_rank/layer1" in records[-1] and "fourier/top_freqs" in records[-1]


def test_metrics_do_not_change_training(tmp_path):
    common = ["p=23", "model.width=64", "steps=30", "progress=none"]
    off = run(tmp_path / "off", common + ["metrics.every=0"])
    on = run(tmp_path / "on", common + ["metrics.probe_every=1"])
    assert on["train/loss"] == off["train/loss"] and on["val/loss"] == off["val/loss"]
