"""Smoke tests of the local SLURM cluster from scripts/slurm: jobs run, sacct reports
them, array tasks share the node, USR2 reaches a job step and requeue restarts a job.
These are the behaviours submitit and Hydra's submitit launcher rely on."""

from __future__ import annotations

import socket
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.slurm_fixture import FINAL, sacct, slurm

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


def sbatch(cluster: dict, folder: Path, *args: str) -> str:
    out = slurm(cluster, "sbatch", "--parsable", "-o", str(folder / "slurm-%j.out"), *args, cwd=folder)
    return out.strip().split(";")[0]  # "<id>" or "<id>;<cluster>"


def wait_final(cluster: dict, job: str, tasks: int = 1, timeout: float = 90) -> list[list[str]]:
    """Wait until sacct shows all `tasks` (array) tasks of `job` in a final state.
    slurmdbd records tasks asynchronously, so a finished task may be missing for a moment."""
    deadline = time.monotonic() + timeout
    while True:
        rows = sacct(cluster, job, "JobID,State,ExitCode,Start,End")
        # "CANCELLED by 0" -> "CANCELLED"
        if len(rows) == tasks and all(r[1].split()[0] in FINAL for r in rows):
            return rows
        if time.monotonic() > deadline:
            show = subprocess.run(["scontrol", "show", "job", job], env=cluster["env"],
                                  capture_output=True, text=True).stdout
            pytest.fail(f"job {job} not finished after {timeout}s; sacct: {rows}\n{show}")
        time.sleep(0.5)


def wait_file(path: Path, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout}s"
        time.sleep(0.2)
    return path.read_text()


def test_hostname_job_completes(slurm_cluster, tmp_path):
    job = sbatch(slurm_cluster, tmp_path, "--wrap", "hostname")
    [[_, state, exit_code, _, _]] = wait_final(slurm_cluster, job)
    assert (state, exit_code) == ("COMPLETED", "0:0")
    assert (tmp_path / f"slurm-{job}.out").read_text().strip() == socket.gethostname().split(".")[0]


def test_failing_job_is_failed(slurm_cluster, tmp_path):
    job = sbatch(slurm_cluster, tmp_path, "--wrap", "exit 3")
    [[_, state, exit_code, _, _]] = wait_final(slurm_cluster, job)
    assert (state, exit_code) == ("FAILED", "3:0")


def test_array_tasks_share_the_node(slurm_cluster, tmp_path):
    job = sbatch(slurm_cluster, tmp_path, "--array=0-3", "--wrap", "sleep 3")
    rows = wait_final(slurm_cluster, job, tasks=4)
    assert sorted(r[0] for r in rows) == [f"{job}_{i}" for i in range(4)]
    assert {r[1] for r in rows} == {"COMPLETED"}
    cpus = int(slurm(slurm_cluster, "sinfo", "-h", "-o", "%c").split()[0])
    if cpus >= 2:
        spans = [(datetime.fromisoformat(r[3]), datetime.fromisoformat(r[4])) for r in rows]
        overlapping = any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1:])
        assert overlapping, f"no two array tasks ran at the same time on {cpus} CPUs: {rows}"


def test_usr2_reaches_the_job_step(slurm_cluster, tmp_path):
    # Like submitit: the payload runs in an srun step, and `scancel --signal`
    # (without --batch) signals the steps.
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"srun bash -c 'trap \"echo USR2 > {tmp_path}/got; exit 0\" USR2; "
        f"touch {tmp_path}/ready; for i in $(seq 300); do sleep 0.2; done'\n"
    )
    job = sbatch(slurm_cluster, tmp_path, str(script))
    wait_file(tmp_path / "ready")
    slurm(slurm_cluster, "scancel", "--signal=USR2", job)
    assert wait_file(tmp_path / "got", timeout=30).strip() == "USR2"
    [[_, state, _, _, _]] = wait_final(slurm_cluster, job)
    assert state == "COMPLETED"


def test_requeue_restarts_the_job(slurm_cluster, tmp_path):
    # First run waits to be requeued; the second (SLURM_RESTART_COUNT=1) ends.
    job = sbatch(
        slurm_cluster, tmp_path, "--wrap",
        f"n=${{SLURM_RESTART_COUNT:-0}}; touch {tmp_path}/run-$n; "
        "if [ $n = 0 ]; then sleep 120; fi",
    )
    wait_file(tmp_path / "run-0")
    slurm(slurm_cluster, "scontrol", "requeue", job)
    # Held for AuthInfo=cred_expire (10 s in start.sh) before it may start again.
    wait_file(tmp_path / "run-1", timeout=60)
    wait_final(slurm_cluster, job)
    states = [r[1] for r in sacct(slurm_cluster, job, "JobID,State", duplicates=True)]
    assert states == ["REQUEUED", "COMPLETED"], states
