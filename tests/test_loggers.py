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

from grokking.loggers import RUN_ID_FILE, NullLogger, WandbLogger, make_logger, summary_values
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
        {"step": s, "train/loss": 1 / (s + 1), "train/acc": s / 200, "val/acc": (s % 7) / 10, "norms": [1, 2]}
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
    keys = ("step", "train/loss", "train/acc", "val/acc")
    assert [row["_step"] for row in run.history] == list(range(0, 200, 10))
    assert [{k: row[k] for k in keys} for row in run.history] == [
        {k: r[k] for k in keys} for r in records(range(0, 200, 10))
    ]
    assert not any("norms" in row for row in run.history)
    assert run.summary["steps_to_grok"] is None
    assert (run.exit_code, run.resumed) == (0, False)


def test_step_is_the_x_axis_and_best_values_are_summarised(tmp_path):
    """define_metric: `step` is every metric's x-axis; accuracies keep their max, losses their min,
    each with its last value, which summary() does not overwrite (summary_values reads it back)."""
    run_once(tmp_path, range(0, 200, 10))
    [path] = find_offline_runs(tmp_path)
    run = read_run(path)
    assert run.metrics["*"] == {"step_metric": "step", "summary": []}
    assert run.metrics["step"] == {"step_metric": "", "summary": []}
    for key, best in {"train/acc": "max", "val/acc": "max", "train/loss": "min", "val/loss": "min"}.items():
        assert run.metrics[key] == {"step_metric": "step", "summary": [best, "last"]}
    val_acc = [r["val/acc"] for r in records(range(0, 200, 10))]
    assert run.summary["val/acc"] == {"max": 0.6, "last": val_acc[-1]} and val_acc[-1] != 0.6
    assert run.summary["train/acc"] == {"max": 190 / 200, "last": 190 / 200}
    assert run.summary["train/loss"] == {"min": 1 / 191, "last": 1 / 191}
    assert summary_values(run.summary)["val/acc"] == val_acc[-1]  # as summary.json has it
    assert summary_values(run.summary)["steps_to_grok"] is None


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


def test_images_and_large_file(tmp_path, caplog):
    """Many rows span several 32 KiB blocks of the .wandb file; images go after the last row, and
    only those made since the run started."""
    image = pytest.importorskip("PIL.Image")
    stale = tmp_path / "old.png"
    image.new("RGB", (4, 4)).save(stale)
    os.utime(stale, (0, 1e9))  # written in 2001, long before this run
    wide = {f"layer{i}/norm": float(i) for i in range(20)}
    logger = make_logger(make_cfg(), tmp_path / "run")
    png = tmp_path / "curve.png"
    image.new("RGB", (4, 4)).save(png)
    for step in range(100):
        logger.log({"step": step, "nan": math.nan, **wide})
    logger.images({"curve": png, "missing": tmp_path / "nope.png", "old": stale})
    logger.close()

    [path] = find_offline_runs(tmp_path)
    assert path.stat().st_size > 2 * 32768
    run = read_run(path)
    assert [row["_step"] for row in run.history] == list(range(101))
    assert all(row["layer7/norm"] == 7.0 and math.isnan(row["nan"]) for row in run.history[:-1])
    assert run.history[-1]["curve"]["_type"] == "image-file"
    assert "missing" not in run.history[-1] and "old" not in run.history[-1]
    assert [m.getMessage() for m in caplog.records if m.name == "grokking.loggers"] == [
        f"W&B: not logging {stale}: it is older than this run."]

    cut = tmp_path / "killed.wandb"  # a killed run's file: read up to the cut, no error
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    partial = read_run(cut)
    assert partial.exit_code is None and 0 < len(partial.history) < 100
    assert partial.history == run.history[: len(partial.history)]


def test_html_is_logged_as_it_is(tmp_path):
    """html(): the file's own text, without W&B's stylesheet, in the run's media; only a file made
    since the run started."""
    report = tmp_path / "run" / "report.html"
    old = tmp_path / "old.html"
    old.write_text("<p>old</p>")
    os.utime(old, (0, 1e9))
    logger = make_logger(make_cfg(), tmp_path / "run")
    report.write_text("<!doctype html><html><body><h1>Run report: grokked at step 4200</h1></body></html>")
    logger.log({"step": 0, "x": 1.0})
    logger.html("report", report)
    logger.html("old", old)
    logger.close()
    [path] = find_offline_runs(tmp_path)
    row = read_run(path).history[-1]
    assert row["report"]["_type"] == "html-file" and "old" not in row
    assert (path.parent / "files" / row["report"]["path"]).read_text() == report.read_text()
    NullLogger().html("report", report)  # the interface every logger has


def test_mode_and_names_from_config_else_wandb_env_else_ours(tmp_path, monkeypatch):
    """logger.* keys left null: W&B's WANDB_* variables apply; unset there too: offline, project
    "grokking", files in the run folder, the folder's name. A key set in the config wins."""
    bare = {"mode": None, "project": None, "tags": []}
    monkeypatch.delenv("WANDB_MODE")
    run_once_with(make_cfg(**bare), tmp_path / "ours")
    [path] = find_offline_runs(tmp_path / "ours")
    ours = read_run(path)
    assert path.parent.parent == tmp_path / "ours" / "wandb"  # offline (online would hang here)
    assert (ours.project, ours.entity, ours.name, ours.group) == ("grokking", "", "ours", "")

    wandb_dir = tmp_path / "shared"
    monkeypatch.setenv("WANDB_MODE", "offline")
    for var, value in {"WANDB_PROJECT": "env-project", "WANDB_ENTITY": "env-team", "WANDB_DIR": str(wandb_dir),
                       "WANDB_RUN_GROUP": "env-group", "WANDB_NAME": "env-name"}.items():
        monkeypatch.setenv(var, value)
    run_once_with(make_cfg(**bare), tmp_path / "env")
    [path] = find_offline_runs(wandb_dir)
    env = read_run(path)
    assert (env.project, env.entity, env.name, env.group) == ("env-project", "env-team", "env-name", "env-group")
    assert env.run_id == (tmp_path / "env" / RUN_ID_FILE).read_text()
    assert not (tmp_path / "env" / "wandb").exists()

    mine = dict(project="p", entity="me", dir=str(tmp_path / "mine"), group="g", run_name="n")
    run_once_with(make_cfg(mode="offline", **mine), tmp_path / "cfg")
    [path] = find_offline_runs(tmp_path / "mine")
    cfg = read_run(path)
    assert (cfg.project, cfg.entity, cfg.name, cfg.group) == ("p", "me", "n", "g")


def run_once_with(cfg, run_dir):
    with make_logger(cfg, run_dir) as logger:
        logger.log({"step": 0, "x": 1.0})


def test_none_and_disabled_log_nothing(tmp_path, monkeypatch):
    """logger=none, logger.mode=disabled, or WANDB_MODE=disabled with logger.mode unset: no W&B
    file at all, not even the run-id file or a wandb folder."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    cfgs = (OmegaConf.create({"logger": {"name": "none"}}), make_cfg(mode="disabled"), make_cfg(mode=None))
    for cfg in cfgs:
        logger = make_logger(cfg, tmp_path / "run")
        assert type(logger) is NullLogger
        logger.log({"step": 0, "x": 1})
        logger.curves(records(range(3)), {"steps_to_memorize": None, "steps_to_grok": None})
        logger.close()
    assert not (tmp_path / "run").exists()
    run_once_with(make_cfg(mode="offline"), tmp_path / "run")  # the config's mode wins
    assert len(find_offline_runs(tmp_path / "run")) == 1
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
