"""Optuna searches (hydra/sweeper=optuna, experiment=search_wd_lr): the task function returns the
summary key named by ``objective``, and runs without it score ``objective_penalty``."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from grokking.config import check_command_line
from grokking.errors import ConfigError, Diverged
from grokking.objective import objective_value, scored
from grokking.training.loop import train
from tests.helpers import FAST, cli, make_cfg
from tests.services import unavailable


def test_objective_is_the_summary_value_or_the_penalty():
    summary = {"status": "completed", "steps_to_grok": 840, "grok_gap": None, "val/loss": float("nan")}
    cfg = make_cfg(["steps=1000", "objective=steps_to_grok"])
    assert objective_value(cfg, summary) == 840.0
    assert objective_value(make_cfg(["steps=1000", "objective=grok_gap"]), summary) == 2000.0  # never grokked
    cfg = make_cfg(["objective=val/loss", "objective_penalty=1e9"])
    assert objective_value(cfg, summary) == 1e9  # not finite


def test_unknown_objective_names_the_allowed_keys():
    with pytest.raises(ConfigError, match=r"objective=val_acc is not in the run's summary; allowed: steps_to_grok"):
        objective_value(make_cfg(["objective=val_acc"]), {"status": "completed", "steps_to_grok": 5})


def test_search_spaces_on_the_command_line_are_checked_like_values():
    check_command_line(["-m", "hydra/sweeper=optuna", "lr=tag(log, interval(1e-4, 1e-2))", "wd=choice(0.1,1.0)"])
    with pytest.raises(ConfigError, match="there is no setting lrr; did you mean lr"):
        check_command_line(["-m", "hydra/sweeper=optuna", "lrr=tag(log, interval(1e-4, 1e-2))"])


def test_without_objective_the_task_returns_the_summary():
    summary = {"status": "completed"}
    assert scored(make_cfg([]), summary) is summary


def test_a_run_that_diverges_in_a_sweep_scores_the_penalty(tmp_path: Path):
    cfg = make_cfg([*FAST, "steps=20", "lr=1e30", "objective=steps_to_grok"])
    with pytest.raises(Diverged):
        train(cfg, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and scored(cfg, summary) == 40.0
    grid = cli(["-m", *FAST, "steps=20", "lr=1e30", "objective=steps_to_grok", "sweep_name=s"], tmp_path)
    assert grid.returncode == 0 and "grokking: diverged: " in grid.stderr  # an outcome, not a failure


@pytest.mark.slow
def test_optuna_search_minimises_the_objective_over_real_runs(tmp_path: Path):
    if importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is None:
        unavailable("hydra-optuna-sweeper is not installed (pip install '.[optuna]')")
    proc = cli(["-m", "experiment=search_wd_lr", "hydra.sweeper.n_trials=3", "steps=20", "eval_every=10",
                "objective=val/loss", f"out_dir={tmp_path}/runs"], cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = tmp_path / "runs" / "sweeps" / "search_wd_lr"
    losses = {}
    for path in sweep.glob("*/summary.json"):
        summary = json.loads(path.read_text())
        cfg = OmegaConf.load(path.parent / ".hydra" / "config.yaml")
        assert summary["status"] == "completed" and summary["step"] == 20 and cfg.p == 47
        losses[(cfg.lr, cfg.wd)] = summary["val/loss"]
    assert len(losses) == 3  # three different trials, each a run folder of its own
    result = OmegaConf.load(sweep / "optimization_results.yaml")
    best = min(losses, key=losses.get)
    assert (result.best_params.lr, result.best_params.wd) == best
    assert result.best_value == pytest.approx(losses[best])
    assert "alembic" not in proc.stdout + proc.stderr
