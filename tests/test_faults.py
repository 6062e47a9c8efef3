"""Faults that really happen to a run folder, each made for real (docs/faults.md):

two processes on one folder, a truncated last.pt, a full disk, Grokfast state resumed onto the
parameters' device.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from grokking.errors import ConfigError
from grokking.optim import GradFilter
from grokking.runlock import run_lock
from tests.helpers import FAST, REPO, cli, metrics, run
from tests.services import unavailable

SHORT = FAST + ["eval_every=10", "checkpoint_every=20"]
MINIBATCH = SHORT + ["batch_size=128"]  # batches and RNG are part of what a resume must restore
GROKFAST = {"none": [], "ema": ["grokfast=ema"], "ma": ["grokfast=ma", "grokfast.window=5"]}


def files(run_dir: Path) -> dict[str, bytes]:
    """Every file of a run folder and its bytes."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def model_state(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["model"]


def assert_same_numbers(run_dir: Path, reference: Path) -> None:
    assert metrics(run_dir) == metrics(reference)
    a, b = model_state(run_dir), model_state(reference)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def assert_clean_record(run_dir: Path, steps: int) -> None:
    """metrics.jsonl holds each evaluation once, in order, up to ``steps``; the run completed."""
    assert [r["step"] for r in metrics(run_dir)] == list(range(0, steps + 1, 10))
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


def start(args: list[str], cwd: Path, name: str) -> subprocess.Popen:
    """``python -m grokking.train ARGS`` in the background, its output in cwd/<name>.out/.err."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "grokking.train", *args], cwd=cwd, env=env,
                            stdout=(cwd / f"{name}.out").open("w"), stderr=(cwd / f"{name}.err").open("w"))


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 300):
    deadline = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"the training ended before {what}"
        assert time.time() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.02)


def run_folder(out_dir: Path) -> Path:
    folders = list(out_dir.glob("*/"))
    assert len(folders) == 1, folders
    return folders[0]


# --- 6. two processes on one run folder --------------------------------------------------------

@pytest.mark.slow
def test_a_second_process_on_a_run_folder_is_refused_and_changes_nothing(tmp_path):
    args = SHORT + ["steps=200"]
    holder = start(args, tmp_path, "holder")
    lock = tmp_path / "runs" / "eval_every=10,frac=0.5,p=47" / "run.lock"
    wait_for(lambda: lock.exists() and f'"pid": {holder.pid}' in lock.read_text(), holder, "lock")
    holder.send_signal(signal.SIGSTOP)  # it keeps its lock while stopped: the second start meets it
    try:
        before = files(lock.parent)
        second = cli(args, tmp_path)
        assert files(lock.parent) == before  # metrics, summary, checkpoints, .hydra: untouched
    finally:
        holder.send_signal(signal.SIGCONT)
    assert second.returncode == 2
    error = [line for line in second.stderr.splitlines() if line.startswith("grokking:")]
    assert len(error) == 1 and error[0].startswith(f"grokking: error: {lock.parent} is in use by pid {holder.pid} on host ")
    assert "(since " in error[0] and "a run folder takes one process at a time" in error[0]
    assert holder.wait(timeout=600) == 0, (tmp_path / "holder.err").read_text()
    assert_clean_record(lock.parent, 200)


@pytest.mark.slow
def test_a_lock_left_by_a_killed_process_does_not_block_the_rerun(tmp_path):
    killed = start(MINIBATCH + ["steps=100000"], tmp_path, "killed")
    run_dir = tmp_path / "runs" / "batch_size=128,eval_every=10,frac=0.5,p=47"
    wait_for(lambda: (run_dir / "checkpoints" / "last.pt").exists(), killed, "checkpoint")
    killed.kill()
    assert killed.wait() == -signal.SIGKILL
    assert '"pid"' in (run_dir / "run.lock").read_text()  # its note stays; its lock died with it
    steps = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)["step"] + 20
    rerun = cli(MINIBATCH + [f"steps={steps}"], tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert_clean_record(run_dir, steps)
    run(tmp_path / "reference", MINIBATCH + [f"steps={steps}"])
    assert_same_numbers(run_dir, tmp_path / "reference")


def test_a_held_folder_is_refused_before_anything_is_written(tmp_path):
    run(tmp_path, SHORT + ["steps=10"])
    before = files(tmp_path)
    with run_lock(tmp_path):  # another open of the lock file: held as another process would hold it
        with pytest.raises(ConfigError, match=rf"is in use by pid {os.getpid()} on host .* \(since .*\): wait"):
            run(tmp_path, SHORT + ["steps=20"])
        assert {k: v for k, v in files(tmp_path).items() if k != "run.lock"} == \
               {k: v for k, v in before.items() if k != "run.lock"}
    assert run(tmp_path, SHORT + ["steps=20"])["step"] == 20  # released: the folder trains again


def test_a_refused_process_puts_the_holders_hydra_files_back(tmp_path):
    hydra = tmp_path / ".hydra"
    hydra.mkdir()
    (hydra / "overrides.yaml").write_text("- steps=50\n")
    with run_lock(tmp_path):
        (hydra / "overrides.yaml").write_text("- steps=70\n")  # what Hydra writes for the second launch
        with pytest.raises(ConfigError, match="is in use"):
            run(tmp_path, SHORT + ["steps=70"])
    assert (hydra / "overrides.yaml").read_text() == "- steps=50\n"


# --- 7. a truncated checkpoints/last.pt ----------------------------------------------------------

def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("grokfast", ["none", *(pytest.param(k, marks=pytest.mark.slow) for k in ("ema", "ma"))])
def test_a_truncated_last_checkpoint_resumes_exactly_from_the_newest_readable_snapshot(
        tmp_path, grokfast, caplog, capsys):
    overrides = MINIBATCH + GROKFAST[grokfast]
    run(tmp_path / "reference", overrides + ["steps=70"])
    broken = tmp_path / "broken"
    run(broken, overrides + ["steps=50"])
    truncate(broken / "checkpoints" / "last.pt")
    truncate(broken / "checkpoints" / "step_0000050.pt")  # the newest snapshot is cut short too
    capsys.readouterr()
    summary = run(broken, overrides + ["steps=70"])
    assert summary["status"] == "completed"
    assert_same_numbers(broken, tmp_path / "reference")
    unreadable = "is unreadable (PytorchStreamReader failed reading zip archive: failed finding central directory)"
    warning = (f"{broken}: checkpoints/last.pt {unreadable}; checkpoints/step_0000050.pt {unreadable}; "
               "continuing from checkpoints/step_0000040.pt (step 40)")
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records if r.name.startswith("grokking.")] == \
           [("grokking.record", "WARNING", warning)]
    assert capsys.readouterr().err.splitlines() == [f"grokking: warning: {warning}"]


@pytest.mark.slow
def test_with_no_readable_checkpoint_the_rerun_stops_with_one_line(tmp_path):
    run_dir = tmp_path / "runs" / "eval_every=10,frac=0.5,p=47"
    assert cli(SHORT + ["steps=20"], tmp_path).returncode == 0
    for path in (run_dir / "checkpoints").iterdir():
        truncate(path)
    before = files(run_dir)
    out = cli(SHORT + ["steps=40"], tmp_path)
    assert out.returncode == 2
    assert out.stderr.splitlines()[-1].startswith(
        f"grokking: error: no checkpoint to continue from in {run_dir}: checkpoints/last.pt is unreadable (")
    assert "restore a copy of the folder or remove it to start afresh" in out.stderr.splitlines()[-1]
    after = files(run_dir)  # the refused launch's own note (run.lock) and .hydra files aside
    assert {k: after[k] for k in after if not k.startswith((".hydra", "run.lock"))} == \
           {k: before[k] for k in before if not k.startswith((".hydra", "run.lock"))}


def test_a_model_only_snapshot_is_not_continued_from(tmp_path):
    """Snapshots written before they held the full state: the run refuses instead of guessing."""
    run(tmp_path, SHORT + ["steps=20"])
    snapshot = tmp_path / "checkpoints" / "step_0000020.pt"
    state = torch.load(snapshot, weights_only=False)
    torch.save({k: state[k] for k in ("step", "model", "config", "metrics")}, snapshot)
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"last.pt is unreadable \(Ran out of input\); .*step_0000020.pt holds "
                                          r"only the model"):
        run(tmp_path, SHORT + ["steps=40"])


# --- 9. a full disk ------------------------------------------------------------------------------

LIMITED_WRITES = """
import resource, signal, sys, torch
from pathlib import Path
from grokking.record import RunRecord

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG
record = RunRecord(Path(sys.argv[1]))
record.write_summary({"status": "running", "step": 10})
record.append({"step": 10})
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
for write in (lambda: record.save({"step": 20, "model": {"w": torch.zeros(4096)}, "optimizer": {}}, snapshot=True),
              lambda: record.append({"step": 20, "pad": "x" * 5000}),
              lambda: record.write_summary({"status": "running", "pad": "x" * 5000})):
    try:
        write()
    except OSError as e:  # NoSpace, naming the file
        print(e)
"""


def test_writes_past_a_file_size_limit_fail_naming_the_file_and_leave_no_partial_file(tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse the writes (any user may set it on itself)."""
    out = subprocess.run([sys.executable, "-c", LIMITED_WRITES, str(tmp_path)], capture_output=True, text=True,
                         cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"file too large writing {tmp_path / name}"
                                       for name in ("checkpoints/last.pt", "metrics.jsonl", "summary.json")]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["checkpoints", "metrics.jsonl", "summary.json"]
    assert metrics(tmp_path) == [{"step": 10}]  # the cut line was taken back
    assert json.loads((tmp_path / "summary.json").read_text()) == {"status": "running", "step": 10}


FULL_DISK = """
set -u
mount -t tmpfs -o size=2m grokking-test "$DISK" || exit 99
cd "$WORK"
python -m grokking.train "$@" 2> full.err > full.out; echo $? > full.rc
cp -a "$DISK/." after_fault
mount -o remount,size=64m "$DISK"
python -m grokking.train "$@" 2> resumed.err > resumed.out; echo $? > resumed.rc
cp -a "$DISK/." resumed
"""


@pytest.mark.slow
def test_a_full_disk_stops_the_run_with_one_line_and_a_readable_record(tmp_path):
    """A 2 MB tmpfs in a private mount namespace: the second checkpoint does not fit."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        unavailable("a private tmpfs needs root and unshare")
    disk = tmp_path / "disk"
    disk.mkdir()
    args = MINIBATCH + ["steps=60", f"out_dir={disk}"]
    env = {**os.environ, "DISK": str(disk), "WORK": str(tmp_path), "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO),
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    script = subprocess.run(["unshare", "-m", "sh", "-c", FULL_DISK, "full-disk", *args], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=900)
    if script.returncode == 99:
        unavailable(f"cannot mount a tmpfs here: {script.stderr.strip()}")
    name = "batch_size=128,eval_every=10,frac=0.5,p=47"
    after_fault, resumed = tmp_path / "after_fault" / name, tmp_path / "resumed" / name
    full_err = (tmp_path / "full.err").read_text().splitlines()
    assert (tmp_path / "full.rc").read_text().strip() == "2"
    assert full_err == [f"grokking: error: no space left on device writing {disk / name}/checkpoints/last.pt"]
    assert not list(after_fault.rglob("*.tmp"))
    summary = json.loads((after_fault / "summary.json").read_text())
    assert summary["status"] == "failed" and "no space left on device" in summary["error"] and summary["step"] == 40
    assert [r["step"] for r in metrics(after_fault)] == [0, 10, 20, 30, 40]
    assert torch.load(after_fault / "checkpoints" / "last.pt", weights_only=False)["step"] == 20

    assert (tmp_path / "resumed.rc").read_text().strip() == "0", (tmp_path / "resumed.err").read_text()
    run(tmp_path / "reference", MINIBATCH + ["steps=60"])
    assert_same_numbers(resumed, tmp_path / "reference")
    assert_clean_record(resumed, 60)


# --- 10. Grokfast state resumed onto the parameters' device ---------------------------------------

@pytest.mark.parametrize("kind", ["ema", "ma"])
def test_grokfast_state_is_restored_onto_the_device_of_its_parameters(kind):
    cfg = OmegaConf.create({"name": kind, "alpha": 0.9, "lamb": 2.0, "window": 3})
    saved = GradFilter(cfg, [torch.nn.Parameter(torch.ones(4)), torch.nn.Parameter(torch.ones(2, 3))])
    for _ in range(3):
        for p in saved.params:
            p.grad = torch.randn_like(p)
        saved.apply()
    state = saved.state_dict()  # on the CPU, as a checkpoint loads
    on_meta = GradFilter(cfg, [torch.nn.Parameter(torch.ones(4, device="meta")),
                               torch.nn.Parameter(torch.ones(2, 3, device="meta"))])
    on_meta.load_state_dict(state)
    restored = on_meta.avg if kind == "ema" else [g for grads in on_meta.history for g in grads]
    assert restored and all(t.device.type == "meta" for t in restored)
    assert [t.shape for t in restored] == [t.shape for t in (state["avg"] or [g for gs in state["history"] for g in gs])]
