"""The W&B logger against real offline W&B runs, read back with grokking.wandb_offline."""

import logging
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from grokking.loggers import RUN_ID_FILE, NullLogger, WandbLogger, make_logger
from grokking.wandb_offline import find_offline_runs, read_run


pytestmark = pytest.mark.usefixtures("offline_wandb")


def make_cfg(**logger):
    return OmegaConf.create(
        {
            "p": 97,
            "lr": 1e-3,
            "logger": {"name": "wandb", "mode": "offline", "project": "test", "tags": ["t"], **logger},
            "op": {"name": "add"},
            "model": {"name": "mlp", "width": 8},
        }
    )


def records(steps):
    return [
        {"step": s, "train/loss": 1 / (s + 1), "train/acc": s / 200, "val/acc": 0.0, "norms": [1, 2]}
        for s in steps
    ]


def run_once(run_dir, steps, exit_code=0):
    logger = make_logger(make_cfg(), run_dir)
    assert isinstance(logger, WandbLogger)
    for record in records(steps):
        logger.log(record)
    logger.summary({"steps_to_grok": None, "val/acc": 0.99})
    logger.close(exit_code)


def wandb_warnings(caplog):
    return [r for r in caplog.records if r.name == "grokking.loggers" and r.levelno == logging.WARNING]


def test_offline_run_reads_back(tmp_path):
    run_dir = tmp_path / "op=add,seed=0"
    run_once(run_dir, range(0, 200, 10))

    [path] = find_offline_runs(run_dir)
    assert path.parent.parent == run_dir / "wandb"
    run = read_run(path)
    assert run.run_id == (run_dir / RUN_ID_FILE).read_text()
    assert (run.name, run.group, run.project) == ("op=add,seed=0", "", "test")
    assert run.tags == ["t", "add", "mlp"]
    assert run.config == {
        "p": 97,
        "lr": 1e-3,
        "logger": {"name": "wandb", "mode": "offline", "project": "test", "tags": ["t"]},
        "op": {"name": "add"},
        "model": {"name": "mlp", "width": 8},
    }
    keys = ("train/loss", "train/acc", "val/acc")
    assert [row["_step"] for row in run.history] == list(range(0, 200, 10))
    assert [{k: row[k] for k in keys} for row in run.history] == [
        {k: r[k] for k in keys} for r in records(range(0, 200, 10))
    ]
    assert not any("norms" in row for row in run.history)
    assert run.summary["steps_to_grok"] is None
    assert run.summary["val/acc"] == 0.99  # the summary, not the last logged row
    assert run.summary["train/acc"] == 190 / 200
    assert (run.exit_code, run.resumed) == (0, False)


def test_two_runs_in_one_process_are_distinct(tmp_path):
    run_once(tmp_path / "a", range(3))
    run_once(tmp_path / "b", range(5))
    runs = [read_run(p) for p in find_offline_runs(tmp_path)]
    assert [len(r.history) for r in runs] == [3, 5]
    assert runs[0].run_id != runs[1].run_id
    assert all(r.exit_code == 0 for r in runs)


def test_unclosed_run_is_finished_by_the_next(tmp_path):
    first = make_logger(make_cfg(), tmp_path / "a")
    first.log({"step": 0, "x": 1.0})
    run_once(tmp_path / "b", range(2))
    a, b = (read_run(p) for p in find_offline_runs(tmp_path))
    assert a.exit_code is not None and a.history[0]["x"] == 1.0
    assert b.run_id != a.run_id and len(b.history) == 2


def test_resume_appends_to_the_same_run(tmp_path):
    run_dir = tmp_path / "run"
    run_once(run_dir, range(0, 50, 10), exit_code=1)
    run_once(run_dir, range(50, 100, 10))

    first, second = (read_run(p) for p in find_offline_runs(run_dir))
    assert first.run_id == second.run_id == (run_dir / RUN_ID_FILE).read_text()
    assert (first.exit_code, first.resumed) == (1, False)
    assert (second.exit_code, second.resumed) == (0, True)
    assert [row["_step"] for row in first.history + second.history] == list(range(0, 100, 10))


def test_images_and_large_file(tmp_path):
    """Many rows span several 32 KiB blocks of the .wandb file; images go after the last row."""
    image = pytest.importorskip("PIL.Image")
    png = tmp_path / "curve.png"
    image.new("RGB", (4, 4)).save(png)
    wide = {f"layer{i}/norm": float(i) for i in range(20)}
    logger = make_logger(make_cfg(), tmp_path / "run")
    for step in range(100):
        logger.log({"step": step, "nan": math.nan, **wide})
    logger.images({"curve": png, "missing": tmp_path / "nope.png"})
    logger.close()

    [path] = find_offline_runs(tmp_path)
    assert path.stat().st_size > 2 * 32768
    run = read_run(path)
    assert [row["_step"] for row in run.history] == list(range(101))
    assert all(row["layer7/norm"] == 7.0 and math.isnan(row["nan"]) for row in run.history[:-1])
    assert run.history[-1]["curve"]["_type"] == "image-file"
    assert "missing" not in run.history[-1]

    cut = tmp_path / "killed.wandb"  # a killed run's file: read up to the cut, no error
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    partial = read_run(cut)
    assert partial.exit_code is None and 0 < len(partial.history) < 100
    assert partial.history == run.history[: len(partial.history)]


def test_none_and_disabled_log_nothing(tmp_path):
    for cfg in (OmegaConf.create({"logger": {"name": "none"}}), make_cfg(mode="disabled")):
        logger = make_logger(cfg, tmp_path)
        assert type(logger) is NullLogger
        logger.log({"step": 0, "x": 1})
        logger.close()
    assert find_offline_runs(tmp_path) == []
    with pytest.raises(ValueError):
        make_logger(OmegaConf.create({"logger": {"name": "tensorboard"}}), tmp_path)


def test_unreachable_server_warns_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    logger = make_logger(make_cfg(mode="online", init_timeout=1), tmp_path)
    for record in records(range(3)):
        logger.log(record)
    logger.summary({"a": 1})
    logger.close(1)
    [warning] = wandb_warnings(caplog)
    assert "init failed" in warning.getMessage()
    assert not (tmp_path / RUN_ID_FILE).exists()


def test_wandb_missing_warns_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with make_logger(make_cfg(), tmp_path) as logger:
        logger.log({"step": 0, "x": 1})
    [warning] = wandb_warnings(caplog)
    assert "ModuleNotFoundError" in warning.getMessage()


def test_failure_while_logging_warns_once(tmp_path, caplog):
    logger = make_logger(make_cfg(), tmp_path)
    logger.log({"step": 0, "x": 1.0})

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    logger._run.log = full_disk
    for record in records(range(1, 5)):
        logger.log(record)
    logger.summary({"a": 1})
    logger.close()
    [warning] = wandb_warnings(caplog)
    assert "log failed" in warning.getMessage() and "No space left" in warning.getMessage()


@pytest.mark.slow
def test_hydra_multirun_names_and_groups(tmp_path):
    """Jobs of one basic-launcher sweep: one W&B run each, grouped by the sweep folder."""
    app = tmp_path / "app.py"
    app.write_text(textwrap.dedent(
        """
        from pathlib import Path
        import hydra
        from hydra.core.hydra_config import HydraConfig
        from grokking.loggers import make_logger

        @hydra.main(version_base="1.3", config_path=None, config_name=None)
        def main(cfg):
            run_dir = Path(HydraConfig.get().runtime.output_dir)
            with make_logger(cfg, run_dir) as logger:
                logger.log({"step": 0, "seed": cfg.seed})

        main()
        """
    ))
    sweep = tmp_path / "sweep42"
    overrides = ["+seed=1,2", "+logger.name=wandb", "+op.name=add", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    subprocess.run([sys.executable, str(app), "-m", *overrides], check=True, cwd=tmp_path, env=env)
    runs = [read_run(p) for p in find_offline_runs(sweep)]
    assert sorted(r.name for r in runs) == [f"+logger.name=wandb,+op.name=add,+seed={s}" for s in (1, 2)]
    assert {r.group for r in runs} == {"sweep42"}
    assert len({r.run_id for r in runs}) == 2
