"""Real trainings with logger=wandb, offline: the .wandb files are read back and compared with the
run record (metrics.jsonl, summary.json, the stored config); a broken W&B never stops training."""
import hashlib
import json
import logging

import pytest
import torch
import wandb

from grokking.analyze import analyse
from grokking.loggers import CURVES_FILE, RUN_ID_FILE, summary_values
from grokking.wandb_offline import find_offline_runs, read_run
from tests.helpers import FAST, cli, metrics, run

QUICK = FAST + ["eval_every=10", "logger=wandb"]
RUN = "eval_every=10,frac=0.5,p=47"  # the run folder of QUICK (logger and steps stay out of it)


@pytest.fixture(autouse=True)
def wandb_env(offline_wandb):
    """Offline W&B (conftest) and one CPU thread (the machine is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    wandb.finish()  # a run left open by a failure test


def pieces(run_dir):
    """The offline W&B runs of run_dir (a resumed run adds a piece) and their evaluation rows."""
    runs = [read_run(p) for p in find_offline_runs(run_dir)]
    return runs, [row for r in runs for row in r.history if "train/loss" in row]


def assert_rows_mirror_metrics(rows, run_dir):
    """Same steps, same numbers, nothing else (lists and nulls stay in metrics.jsonl)."""
    records = metrics(run_dir)
    assert [row["_step"] for row in rows] == [r["step"] for r in records]
    for row, record in zip(rows, records):
        numbers = {k: v for k, v in record.items() if isinstance(v, (int, float))}
        assert {k: v for k, v in row.items() if not k.startswith("_")} == numbers


def logged_curves(wb) -> str:
    """The sha256 of the "curves" image in the row after the last evaluation; no other image."""
    media = {k: v for k, v in wb.history[-1].items() if isinstance(v, dict) and v.get("_type") == "image-file"}
    assert list(media) == ["curves"]
    return media["curves"]["sha256"]


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def completed(run_dir, steps):
    summary = json.loads((run_dir / "summary.json").read_text())
    return summary["status"] == "completed" and [r["step"] for r in metrics(run_dir)] == list(range(0, steps + 1, 10))


@pytest.mark.slow
def test_a_run_mirrors_its_record(tmp_path):
    out = cli(QUICK + ["steps=40"], tmp_path)
    assert out.returncode == 0, out.stderr
    run_dir = tmp_path / "runs" / RUN
    [wb], rows = pieces(run_dir)
    assert (wb.run_id, wb.name, wb.group, wb.exit_code) == ((run_dir / RUN_ID_FILE).read_text(), RUN, "", 0)
    assert_rows_mirror_metrics(rows, run_dir)
    assert wb.config == torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["config"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {k: summary_values(wb.summary)[k] for k in summary} == summary
    assert summary["status"] == "completed" and "steps_to_grok" in wb.summary
    assert wb.summary["val/acc"]["max"] == max(r["val/acc"] for r in metrics(run_dir))
    assert wb.metrics["*"]["step_metric"] == "step"
    assert logged_curves(wb) == sha256(run_dir / CURVES_FILE)


@pytest.mark.slow
def test_a_multirun_is_one_group_and_resumed_jobs_keep_their_runs(tmp_path):
    """Two jobs in one process: one run each, in the sweep's group. The same command with more
    steps (what a requeued SLURM array does) and then ``resume=<folder>`` continue the same runs."""
    sweep = tmp_path / "runs" / "sweeps" / "grid"
    jobs = [sweep / f"{RUN},seed={s}" for s in (0, 1)]
    args = ["-m", *QUICK, "seed=0,1", "sweep_name=grid"]
    for extra in (["steps=20"], ["steps=40"]):
        out = cli(args + extra, tmp_path)
        assert out.returncode == 0, out.stderr
    out = cli([f"resume='{jobs[0]}'", "steps=60"], tmp_path)
    assert out.returncode == 0, out.stderr

    ids = set()
    for job, steps in zip(jobs, (60, 40)):
        runs, rows = pieces(job)
        assert len(runs) == steps // 20
        assert {(r.run_id, r.name, r.group, r.exit_code) for r in runs} == {
            ((job / RUN_ID_FILE).read_text(), job.name, "grid", 0)}
        assert [r.resumed for r in runs] == [False] + [True] * (len(runs) - 1)
        assert completed(job, steps)
        assert_rows_mirror_metrics(rows, job)  # the union of the pieces, no step twice
        ids.add(runs[0].run_id)
    assert len(ids) == 2


def test_extending_a_run_appends_to_its_wandb_run(tmp_path):
    run(tmp_path, QUICK + ["steps=20"])
    run(tmp_path, QUICK + ["steps=40"])
    runs, rows = pieces(tmp_path)
    assert [(r.run_id, r.resumed) for r in runs] == [((tmp_path / RUN_ID_FILE).read_text(), False),
                                                     (runs[0].run_id, True)]
    assert_rows_mirror_metrics(rows, tmp_path)


def test_extending_after_an_analysis_logs_only_this_runs_curves(tmp_path):
    """A run logs the curves it drew; extended after `grokking.analyze`, it logs its new curves,
    not the analysis PNGs left in the folder before it started."""
    run(tmp_path, QUICK + ["steps=20"])
    analyse(tmp_path, device="cpu")
    run(tmp_path, QUICK + ["steps=40"])
    first, second = (read_run(p) for p in find_offline_runs(tmp_path))
    assert logged_curves(first) != logged_curves(second) == sha256(tmp_path / CURVES_FILE)
    assert logged_curves(second) != sha256(tmp_path / "analysis" / "curves.png")
    assert sorted(p.name for p in (tmp_path / "analysis").glob("*.png"))  # the analysis made some


def test_wandb_mode_disabled_writes_no_wandb_files(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    run(tmp_path, QUICK + ["steps=20"])
    assert completed(tmp_path, 20)
    assert not any(p.name.startswith("wandb") for p in tmp_path.iterdir())


@pytest.mark.slow
def test_unreachable_server_leaves_one_warning(tmp_path):
    env = {"WANDB_MODE": "online", "WANDB_BASE_URL": "http://127.0.0.1:9", "WANDB_API_KEY": "x" * 40}
    out = cli(QUICK + ["steps=40", "logger.mode=online", "logger.init_timeout=2"], tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert (out.stdout + out.stderr).count("W&B disabled for this run: init failed (CommError") == 1
    assert "Traceback" not in out.stderr
    [run_dir] = (tmp_path / "runs").iterdir()  # logger.* keys are part of the folder name
    assert completed(run_dir, 40) and not (run_dir / RUN_ID_FILE).exists()


def test_bad_key_leaves_one_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_API_KEY", "bad")
    run(tmp_path, QUICK + ["steps=40", "logger.mode=online"])
    [warning] = wandb_warnings(caplog)
    assert "API key" in warning
    assert completed(tmp_path, 40)


def test_unusable_wandb_dir_leaves_one_warning(tmp_path, caplog):
    (tmp_path / "file").write_text("")
    run(tmp_path / "run", QUICK + ["steps=40", f"logger.dir={tmp_path / 'file' / 'wandb'}"])
    assert len(wandb_warnings(caplog)) == 1
    assert completed(tmp_path / "run", 40) and find_offline_runs(tmp_path) == []


def test_full_disk_while_training_leaves_one_warning(tmp_path, monkeypatch, caplog):
    log = wandb.sdk.wandb_run.Run.log

    def log_until_full(self, data, step=None, commit=None):
        if step is not None and step >= 20:
            raise OSError(28, "No space left on device")
        return log(self, data, step=step, commit=commit)

    monkeypatch.setattr(wandb.sdk.wandb_run.Run, "log", log_until_full)
    run(tmp_path, QUICK + ["steps=40"])
    [warning] = wandb_warnings(caplog)
    assert "log failed" in warning and "No space left on device" in warning
    assert completed(tmp_path, 40)


def wandb_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "grokking.loggers" and r.levelno == logging.WARNING]
