"""Grids through launcher=slurm on the real local SLURM cluster (scripts/slurm): a grid with a
failing run, a run preempted with USR2 that is requeued and ends exactly as an uninterrupted one
(same W&B run), and ``sbatch run.sh``. Each test has its own out_dir, so its own submitit folder
(job ids restart at 1 after a wipe of the cluster's state)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import FAST, REPO, metrics
from tests.slurm_fixture import FINAL, sacct, slurm

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

# What the local cluster takes: no GPUs, one CPU per job, little memory.
CLUSTER = ["launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.gpus_per_node=null",
           "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]


def env(cluster: dict) -> dict:
    # One thread per process (the jobs ask for one CPU each, and sbatch passes this environment
    # on): threads spinning on a busy 2-core machine make a run many times slower.
    return {**cluster["env"], "PYTHONUNBUFFERED": "1", "WANDB_SILENT": "true", "OMP_NUM_THREADS": "1"}


@pytest.fixture
def grid(slurm_cluster, tmp_path):
    """Start ``python -m grokking.train -m ARGS`` in tmp_path, as a user would type it; at the end
    stop it and cancel the jobs it submitted (those named in its submitit folders) if still there."""
    started: list[subprocess.Popen] = []

    def start(args: list[str]) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "grokking.train", "-m", *CLUSTER, *args], cwd=tmp_path,
                                env=env(slurm_cluster), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    jobs = {p.name.split("_")[0] for p in tmp_path.glob("runs/sweeps/*/.submitit/[0-9]*")}
    if jobs:
        subprocess.run(["scancel", *sorted(jobs)], env=slurm_cluster["env"], capture_output=True, timeout=60)


def job_ids(sweep: Path) -> list[str]:
    return sorted(p.name for p in (sweep / ".submitit").glob("[0-9]*"))


def finish(proc: subprocess.Popen, timeout: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"the sweep did not end within {timeout} s:\n{out[-4000:]}")
    return out


def job_rows(cluster: dict, job: str) -> list[list[str]]:
    """[JobID, JobName, State, ExitCode] for each task and each start of ``job``."""
    return sacct(cluster, job, "JobID,JobName,State,ExitCode", duplicates=True)


def wait_for(what: str, check, timeout: float, proc: subprocess.Popen | None = None, every: float = 0.2):
    end = time.time() + timeout
    while time.time() < end:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"the sweep ended before {what}:\n{proc.stdout.read()[-4000:]}")
        time.sleep(every)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def last_step(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "summary.json").read_text()).get("step", -1)
    except (OSError, ValueError):
        return -1


def test_grid_runs_as_one_array_and_a_failing_run_does_not_stop_the_others(slurm_cluster, grid, tmp_path):
    """seed x n_train: 4 runs complete, the 2 with split.n_train=5000 (more than the table's 2209
    pairs: a combination, found when the run starts) fail with a config error and are reported
    with that error; the command then exits 1."""
    proc = grid([*FAST, "steps=60", "seed=0,1", "split.n_train=500,600,5000", f"out_dir={tmp_path}/runs",
                 "sweep_name=grid"])
    out = finish(proc, timeout=420)
    assert proc.returncode == 1, out
    sweep = tmp_path / "runs" / "sweeps" / "grid"
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["counts"] == {"completed": 4, "failed": 2}, out
    array = {r["job_id"].split("_")[0] for r in summary["runs"]}
    assert len(array) == 1 and len(summary["runs"]) == 6  # one job array of 6 tasks
    for row in summary["runs"]:
        run_dir = Path(row["run_dir"])
        assert run_dir.parent == sweep and run_dir.name.startswith("frac=")
        assert row["job_id"] in out and run_dir.name in out  # the table names job and folder
        if "split.n_train=5000" in row["overrides"]:
            assert row["status"] == "failed" and "split.n_train=5000 is out of range" in row["error"], row
            assert "split.n_train=5000 is out of range" in Path(row["stderr"]).read_text()
        else:
            assert row["status"] == "completed" and row["error"] is None, row
            record = json.loads((run_dir / "summary.json").read_text())
            assert record["status"] == "completed" and record["step"] == 60
            assert metrics(run_dir)[-1]["step"] == 60 and (run_dir / "checkpoints" / "last.pt").is_file()
    assert "2 of 6 runs failed" in out
    logs = {Path(r["stderr"]).parent for r in summary["runs"]}  # submitit's logs, a folder per job
    assert len(logs) == 6 and all(p.parent == sweep / ".submitit" and p.is_dir() for p in logs)
    job = array.pop()

    def all_six():  # slurmdbd records tasks asynchronously: the last may lag the sweep's end
        rows = job_rows(slurm_cluster, job)
        return rows if len(rows) == 6 else None

    states = wait_for("sacct to list all 6 tasks", all_six, 30)
    assert len(states) == 6 and {name for _, name, _, _ in states} == {"grokking"}
    # the table again, from the run folders alone
    table = subprocess.run([sys.executable, "-m", "grokking.launcher", str(sweep)], capture_output=True, text=True)
    assert table.returncode == 0 and table.stdout.count("completed") == 4 and table.stdout.count("failed") == 2


def test_preempted_run_is_requeued_and_ends_as_an_uninterrupted_run(slurm_cluster, grid, tmp_path):
    """USR2 mid-run (what SLURM sends before a preemption or the time limit): the run saves
    last.pt, submitit requeues the job, the job resumes in the same folder and the same W&B run,
    and metrics.jsonl equals that of a run that was never stopped."""
    config = [*FAST, "steps=1000", "eval_every=20", "seed=3"]
    # the uninterrupted run, in a process of its own like the job, meanwhile
    reference = subprocess.Popen([sys.executable, "-m", "grokking.train", *config, f"out_dir={tmp_path}/reference"],
                                 cwd=tmp_path, env=env(slurm_cluster), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    # timeout_min > 10, or submitit takes any signal for a time-out
    proc = grid([*config, "logger=wandb", "hydra.launcher.timeout_min=30", f"out_dir={tmp_path}/runs",
                 "sweep_name=pre"])
    sweep = tmp_path / "runs" / "sweeps" / "pre"
    run_dir = sweep / "eval_every=20,frac=0.5,p=47,seed=3"
    wait_for("the run's first evaluations", lambda: last_step(run_dir) >= 40, timeout=180, proc=proc)
    [job] = job_ids(sweep)
    run_id = (run_dir / "wandb_run_id.txt").read_text()
    slurm(slurm_cluster, "scancel", "--signal=USR2", job)
    # the job goes back to the queue, held ~13 s before it may start again: release it now
    wait_for("the requeue", lambda: "PENDING" in slurm(slurm_cluster, "squeue", "-h", "-j", job, "-o", "%T"),
             timeout=60, proc=proc)
    interrupted = json.loads((run_dir / "summary.json").read_text())
    assert interrupted["status"] == "interrupted" and 40 <= interrupted["step"] < 1000, interrupted
    slurm(slurm_cluster, "scontrol", "update", f"jobid={job}", "StartTime=now")
    out = finish(proc, timeout=420)
    assert proc.returncode == 0, out

    log = (sweep / ".submitit" / job / f"{job}_0_log.out").read_text()
    assert "this job is preempted" in log and f"Requeued job {job}" in log
    # the result file comes a moment before SLURM's accounting ends the job
    states = lambda: [state for _, _, state, _ in job_rows(slurm_cluster, job)]  # noqa: E731
    # and slurmdbd records asynchronously: wait for the second start's final state
    wait_for("the job's end in sacct", lambda: states()[-1:] not in ([], ["REQUEUED"], ["PENDING"], ["RUNNING"]),
             timeout=60)
    assert states() == ["REQUEUED", "COMPLETED"]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"
    assert (run_dir / "wandb_run_id.txt").read_text() == run_id
    assert len(list((run_dir / "wandb").glob(f"offline-run-*-{run_id}"))) == 2  # one per start, one run id

    out = finish(reference, timeout=300)
    assert reference.returncode == 0, out
    # every value of every evaluation, except the note of skipped metric groups, which the metric
    # suite writes into the first evaluation of each start of a run
    def values(folder):
        return [{k: v for k, v in rec.items() if k != "metrics/skipped"} for rec in metrics(folder)]
    assert len(metrics(run_dir)) == 51
    assert values(run_dir) == values(tmp_path / "reference" / run_dir.name)


def test_sbatch_run_sh_trains_in_the_submitting_folder(slurm_cluster, tmp_path):
    """``sbatch run.sh op=sub wd=1.0``: run.sh finds the repository although SLURM runs a copy of
    it, and the run lands in the folder sbatch was called from."""
    script = os.path.relpath(REPO / "run.sh", tmp_path)
    venv = {**env(slurm_cluster), "GROKKING_VENV": str(Path(sys.executable).parent.parent)}
    sub = subprocess.run(["sbatch", "--parsable", "--gpus-per-node=0", "-c", "1", "--mem=1G", script,
                          "op=sub", "wd=1.0", *FAST, "steps=30"], cwd=tmp_path, env=venv,
                         capture_output=True, text=True, timeout=60)
    assert sub.returncode == 0, sub.stderr
    job = sub.stdout.strip().split(";")[0]
    # once, on a fresh clone, sacct first gave a final record named "allocation" for this job:
    # wait for the job's own record, named by run.sh's #SBATCH line
    rows = wait_for("the job to end", lambda: [r for r in job_rows(slurm_cluster, job) if r[2] in FINAL
                                               and r[1] == "grokking"], timeout=300, every=1)
    output = (tmp_path / f"slurm-{job}.out").read_text()
    assert rows[-1][2:] == ["COMPLETED", "0:0"], output
    summary = json.loads((tmp_path / "runs" / "frac=0.5,op=sub,p=47,wd=1.0" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["step"] == 30


def test_a_packed_grid_is_one_task_per_pack_and_a_preempted_pack_resumes(slurm_cluster, grid, tmp_path):
    """pack=2 over three seeds: two array tasks (a pack of two, a run alone). USR2 to the pack's
    task: every member saves, the task is requeued and trains the same pack on, and each member
    ends with the numbers of the pack that was never stopped (docs/packing.md)."""
    config = [*FAST, "steps=600", "eval_every=20", "pack=2"]
    reference = subprocess.Popen([sys.executable, "-m", "grokking.train", "-m", *config, "seed=0,1",
                                  f"out_dir={tmp_path}/reference", "sweep_name=ref"], cwd=tmp_path,
                                 env=env(slurm_cluster), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc = grid([*config, "seed=0,1,2", "hydra.launcher.timeout_min=30", f"out_dir={tmp_path}/runs", "sweep_name=pk"])
    sweep = tmp_path / "runs" / "sweeps" / "pk"
    members = [sweep / f"eval_every=20,frac=0.5,p=47,seed={s}" for s in (0, 1)]
    wait_for("the pack's first evaluations", lambda: min(last_step(m) for m in members) >= 40, timeout=240, proc=proc)
    task = next(t for t in job_ids(sweep) if t.endswith("_0"))  # the pack: the first array task
    slurm(slurm_cluster, "scancel", "--signal=USR2", task)
    wait_for("the requeue", lambda: "PENDING" in slurm(slurm_cluster, "squeue", "-h", "-j", task, "-o", "%T"),
             timeout=60, proc=proc)
    for member in members:
        interrupted = json.loads((member / "summary.json").read_text())
        assert interrupted["status"] == "interrupted" and 40 <= interrupted["step"] < 600, interrupted
    slurm(slurm_cluster, "scontrol", "update", f"jobid={task}", "StartTime=now")
    out = finish(proc, timeout=600)
    assert proc.returncode == 0, out
    summary = json.loads((sweep / "sweep_summary.json").read_text())
    assert summary["counts"] == {"completed": 3} and len({r["job_id"] for r in summary["runs"]}) == 2
    finish(reference, timeout=300)
    assert reference.returncode == 0

    def values(folder):  # metrics/skipped is written at the first evaluation of each start
        return [{k: v for k, v in rec.items() if k != "metrics/skipped"} for rec in metrics(folder)]
    for member in members:
        assert len(metrics(member)) == 31
        assert values(member) == values(tmp_path / "reference" / "sweeps" / "ref" / member.name)
