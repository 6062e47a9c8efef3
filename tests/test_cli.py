"""`python -m grokking.train` as a researcher types it: config display, errors, grids, kills."""
import json
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import FAST, cli, metrics

QUICK = FAST + ["steps=30", "eval_every=10"]


def test_cfg_job_shows_the_composed_config(tmp_path):
    out = cli(["--cfg", "job", "--resolve", "op=sub", "wd=1.0"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert "weight_decay: 1.0" in out.stdout and "name: sub" in out.stdout
    assert not (tmp_path / "runs").exists()


def test_short_knobs_reach_their_groups(tmp_path):
    out = cli(["--cfg", "job", "--resolve", "p=113", "frac=0.3", "wd=0.5", "lr=0.003", "seed=7", "steps=9"], tmp_path)
    job = out.stdout
    for line in ("lr: 0.003", "weight_decay: 0.5", "frac: 0.3", "p: 113", "seed: 7", "steps: 9"):
        assert line in job


@pytest.mark.parametrize("args, message", [
    (["model=transformer", "model.heads=5"], "model.heads=5 does not divide model.width=128"),
    (["op=expr", "op.expr=a+os"], "op.expr='a+os': 'os' is not allowed"),
    (["frac=0"], "frac=0 is invalid; it must be > 0 and <= 1"),
    (["batch_size=abc"], "batch_size=abc is not an integer"),
])
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, message):
    out = cli(QUICK + args, tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines[-1].startswith("grokking: error: ") and message in lines[-1]
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("args, message", [
    (["op=pow"], "op=pow is not an option; allowed: add, add3, div, "),
    (["-m", "wd=0.1,abc"], "in wd=0.1,abc: wd=abc is not a number"),
    (["resume=runs/op=sub,wd=1.0"], "resume=runs/op=sub,wd=1.0: no run to continue there"),
])
def test_bad_override_is_one_line_before_anything_runs(tmp_path, args, message):
    out = cli([*args, *QUICK], tmp_path)  # more cases in test_config.py
    assert out.returncode == 2, out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("grokking: error: ") and message in line
    assert not (tmp_path / "runs").exists()


def test_multirun_grid_has_one_folder_per_run(tmp_path):
    out = cli(["-m", *QUICK, "op=add,sub", "wd=0.1,1.0", "sweep_name=grid"], tmp_path)
    assert out.returncode == 0, out.stderr
    sweep = tmp_path / "runs" / "sweeps" / "grid"
    runs = sorted(p.name for p in sweep.iterdir() if (p / "summary.json").exists())
    assert runs == ["eval_every=10,frac=0.5,op=add,p=47,wd=0.1", "eval_every=10,frac=0.5,op=add,p=47,wd=1.0",
                    "eval_every=10,frac=0.5,op=sub,p=47,wd=0.1", "eval_every=10,frac=0.5,op=sub,p=47,wd=1.0"]
    for name in runs:
        assert json.loads((sweep / name / "summary.json").read_text())["status"] == "completed"
        assert (sweep / name / ".hydra" / "config.yaml").exists()


def wait_for_step(run_dir, step, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if (run_dir / "metrics.jsonl").exists() and any(r["step"] >= step for r in metrics(run_dir)):
            return
        time.sleep(0.1)
    raise AssertionError(f"no evaluation at step {step} before the deadline")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_run_is_readable_and_resumes_exactly(tmp_path, sig):
    args = FAST + ["steps=400", "eval_every=10", "checkpoint_every=50"]
    assert cli(args + ["out_dir=whole"], tmp_path).returncode == 0
    proc = subprocess.Popen([sys.executable, "-m", "grokking.train", *args, "out_dir=cut"], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = tmp_path / "cut" / "eval_every=10,frac=0.5,p=47"
    wait_for_step(run_dir, 120, proc)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == ("running" if sig == signal.SIGKILL else "interrupted")
    assert metrics(run_dir)[-1]["step"] >= 120  # readable up to the last evaluation
    assert (run_dir / "checkpoints" / "last.pt").exists()
    again = cli(args + ["out_dir=cut"], tmp_path)
    assert again.returncode == 0, again.stderr
    assert metrics(run_dir) == metrics(tmp_path / "whole" / run_dir.name)


def test_resume_option_continues_a_folder_with_its_own_config(tmp_path):
    assert cli(QUICK + ["op=sub"], tmp_path).returncode == 0
    folder = tmp_path / "runs" / "eval_every=10,frac=0.5,op=sub,p=47"
    out = cli([f"resume={folder}", "steps=50", "progress=none"], tmp_path)
    assert out.returncode == 0, out.stderr
    assert [r["step"] for r in metrics(folder)][-1] == 50
    assert json.loads((folder / "summary.json").read_text())["steps"] == 50


def test_changed_config_in_the_same_folder_is_refused(tmp_path):
    assert cli(QUICK + ["out_dir=o", "hydra.run.dir=o/x"], tmp_path).returncode == 0
    out = cli(QUICK + ["out_dir=o", "hydra.run.dir=o/x", "lr=0.01"], tmp_path)
    assert out.returncode == 2 and "optimizer.lr: 0.001 -> 0.01" in out.stderr
    assert "lr: 0.001" in (tmp_path / "o" / "x" / ".hydra" / "config.yaml").read_text()


def test_a_failing_job_does_not_stop_a_local_grid(tmp_path):
    # 5000 training pairs do not fit the 2209 of p=47: a combination, found when that run starts
    out = cli(["-m", *QUICK, "split.n_train=5000,500", "sweep_name=g"], tmp_path)
    assert out.returncode != 0 and "split.n_train=5000 is out of range" in out.stderr
    sweep = tmp_path / "runs" / "sweeps" / "g"
    status = {p.name: json.loads((p / "summary.json").read_text())["status"] for p in sweep.iterdir() if p.is_dir()}
    assert status == {"eval_every=10,frac=0.5,p=47,split.n_train=5000": "failed",
                      "eval_every=10,frac=0.5,p=47,split.n_train=500": "completed"}


def test_every_value_of_a_grid_is_checked_before_any_run_starts(tmp_path):
    out = cli(["-m", *QUICK, "frac=0.5,1.5", "sweep_name=g"], tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == "grokking: error: in frac=0.5,1.5: frac=1.5 is invalid; it must be > 0 and <= 1"
    assert not (tmp_path / "runs").exists()


def test_divergence_is_a_status_one_line_and_a_nonzero_exit(tmp_path):
    out = cli(QUICK + ["lr=1e5"], tmp_path)
    assert out.returncode == 3, out.stderr
    assert "Traceback" not in out.stderr
    [line] = [ln for ln in out.stderr.splitlines() if ln.startswith("grokking:")]
    assert line.startswith("grokking: diverged: train/loss is ")
    [summary] = (tmp_path / "runs").glob("*/summary.json")
    assert json.loads(summary.read_text())["status"] == "diverged"


def test_a_diverged_run_is_an_outcome_of_a_grid_not_a_failure(tmp_path):
    out = cli(["-m", *QUICK, "lr=1e5,1e-3", "sweep_name=g"], tmp_path)
    assert out.returncode == 0, out.stderr
    sweep = tmp_path / "runs" / "sweeps" / "g"
    status = {p.name: json.loads((p / "summary.json").read_text())["status"] for p in sweep.iterdir() if p.is_dir()}
    assert sorted(status.values()) == ["completed", "diverged"]
    table = subprocess.run([sys.executable, "-m", "grokking.compare", str(sweep)], capture_output=True, text=True)
    assert table.returncode == 0, table.stderr
    assert any("diverged" in ln and "100000" in ln for ln in table.stdout.splitlines())


def test_progress_and_milestones_go_through_logging_into_train_log(tmp_path):
    out = cli(FAST + ["steps=300", "progress=lines", "hydra.verbose=true", "hydra.run.dir=r"], tmp_path)
    assert out.returncode == 0, out.stderr
    log = (tmp_path / "r" / "train.log").read_text()
    assert "[grokking.progress][INFO] - step 300/300" in log and "memorised at step" in log
    assert "[grokking.train][DEBUG]" in log and "memorised at step" in out.stderr


def test_a_run_writes_its_report_at_the_end(tmp_path):
    out = cli(["p=47", "frac=0.5", "progress=none", "steps=20", "hydra.run.dir=r"], tmp_path)
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "r" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") or "<html" in page[:200]
