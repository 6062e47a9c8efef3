"""A real single-node SLURM cluster (with accounting) for tests, from scripts/slurm.

tests/conftest.py imports the fixture, so every test module can ask for it::

    def test_something(slurm_cluster):
        subprocess.run(["sbatch", ...], env=slurm_cluster["env"], check=True)

The fixture installs the packages (scripts/slurm/install.sh), starts the cluster
(scripts/slurm/start.sh) and sets ``SLURM_CONF`` in ``os.environ`` for the
session, so that submitit and Hydra's submitit launcher in this process find it.
At the end it stops the cluster again, but only if it was not already running
before the session (so a cluster a developer started by hand stays up) and
``GROKKING_SLURM_KEEP`` is unset.

If the packages cannot be installed (or we are not root), the tests are skipped
with the reason (tests/services.py), except under GROKKING_REQUIRE_SERVICES=1
(.ci/run), where that is a failure. A cluster that does not start is always a failure.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.services import unavailable

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "scripts" / "slurm"

# Shared by every module that imports the fixture: pytest makes one session
# fixture per importing module, but the cluster is started and stopped once.
_session: dict = {"refs": 0, "info": None, "stop_at_end": False, "old_conf": None}


def _script(name: str, *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPTS / name), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _tail(proc: subprocess.CompletedProcess, lines: int = 40) -> str:
    text = (proc.stdout or "") + (proc.stderr or "")
    return "\n".join(text.splitlines()[-lines:])


def _acquire() -> dict:
    if _session["refs"]:
        _session["refs"] += 1
        return _session["info"]

    if os.geteuid() != 0:
        unavailable("SLURM cluster: scripts/slurm needs root (munged, slurmctld and slurmd run as root)")

    install = _script("install.sh", timeout=1200)
    if install.returncode != 0:
        unavailable(f"SLURM cluster: scripts/slurm/install.sh failed (exit {install.returncode}):\n{_tail(install)}")

    # sacct -j lists every job ever recorded under an id, and ids start again at 1 when slurmctld's
    # state is new while the accounting database is kept: tests ask sacct only for jobs since now.
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 1))
    was_running = _script("start.sh", "--check", timeout=60).returncode == 0
    start = _script("start.sh", timeout=600)
    if start.returncode != 0:
        pytest.fail(
            f"scripts/slurm/start.sh failed (exit {start.returncode}):\n{_tail(start, 80)}",
            pytrace=False,
        )
    exports = [ln for ln in start.stdout.splitlines() if ln.startswith("export SLURM_CONF=")]
    if not exports:
        pytest.fail(f"start.sh printed no 'export SLURM_CONF=' line:\n{_tail(start)}", pytrace=False)
    slurm_conf = exports[-1].split("=", 1)[1].strip()
    if not Path(slurm_conf).is_file():
        pytest.fail(f"start.sh named {slurm_conf}, which does not exist", pytrace=False)

    _session["old_conf"] = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = slurm_conf
    _session["stop_at_end"] = not was_running and not os.environ.get("GROKKING_SLURM_KEEP")
    _session["info"] = {
        "slurm_conf": slurm_conf,
        "env": dict(os.environ),
        "state_dir": str(Path(slurm_conf).parent.parent),
        "partition": "debug",
        "started_here": not was_running,
        "since": since,
    }
    _session["refs"] = 1
    return _session["info"]


def _release() -> None:
    _session["refs"] -= 1
    if _session["refs"]:
        return
    if _session["old_conf"] is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = _session["old_conf"]
    if _session["stop_at_end"]:
        stop = _script("stop.sh", timeout=300)
        if stop.returncode != 0:
            # Teardown: report, but do not turn passed tests into errors.
            print(f"scripts/slurm/stop.sh failed (exit {stop.returncode}):\n{_tail(stop)}")
    _session["info"] = None


@pytest.fixture(scope="session")
def slurm_cluster():
    """Yield {"slurm_conf", "env", "state_dir", "partition", "started_here", "since"}."""
    info = _acquire()
    try:
        yield info
    finally:
        _release()


# sacct states after which a job will not change any more.
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
         "PREEMPTED", "BOOT_FAIL", "DEADLINE"}


def slurm(cluster: dict, *cmd: str, cwd: Path | None = None) -> str:
    """Run a SLURM client command against the test cluster; its stdout, or fail the test."""
    proc = subprocess.run(cmd, env=cluster["env"], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr}"
    return proc.stdout


def sacct(cluster: dict, job: str, fields: str, duplicates: bool = False) -> list[list[str]]:
    """sacct's rows for ``job`` (one per array task; with ``duplicates``, one per start of a requeued
    job), only for jobs since the fixture started."""
    cmd = ["sacct", "-n", "-X", "-P", "-S", cluster["since"], "-j", job, "-o", fields] + (["-D"] if duplicates else [])
    return [line.split("|") for line in slurm(cluster, *cmd).splitlines() if line]
