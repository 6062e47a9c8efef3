"""One process per run folder.

Two processes training in one folder (the same command started twice, a requeued SLURM job beside
a stale one) would interleave their evaluations in metrics.jsonl and overwrite each other's
checkpoints. So ``train`` holds an exclusive lock on ``<run>/run.lock`` while it runs, and a second
process is refused at once with a ConfigError naming the holder.

The lock is the kernel's (``flock``): it ends with the process that holds it, however that process
ends (SIGKILL included), so a lock file left behind never blocks a resume or a requeue. The file's
text only says who holds the lock (for the message) and keeps the holder's ``.hydra`` files: Hydra
writes each launch's into the folder before our code runs, so a refused process puts them back.
On NFS, Linux maps ``flock`` onto NFS byte-range locks, which hold across nodes.
"""
from __future__ import annotations

import fcntl
import functools
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from grokking.errors import ConfigError
from grokking.record import RunRecord, writing

LOCK_NAME = "run.lock"


@contextmanager
def run_lock(run_dir: Path):
    """Hold ``run_dir``'s lock for the duration of the block, or raise ConfigError if another
    process holds it (after restoring that process's .hydra files)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record = RunRecord(run_dir)
    path = run_dir / LOCK_NAME
    with open(path, "a+") as lock:  # "a+": open without erasing the holder's text
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = read_holder(lock.read())
            record.restore_hydra_files(holder.get("hydra_files", {}))
            raise ConfigError(f"{run_dir} is in use by {describe(holder)}: wait for it to end or stop it; "
                              "a run folder takes one process at a time") from None
        since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        note = {"host": socket.gethostname(), "pid": os.getpid(), "since": since, "hydra_files": record.hydra_files()}
        with writing(path):
            lock.truncate(0)
            lock.write(json.dumps(note) + "\n")
            lock.flush()
        yield


def one_process_per_run(train):
    """Decorate ``train(cfg, run_dir)`` to run under ``run_dir``'s lock."""
    @functools.wraps(train)
    def locked(cfg, run_dir: Path):
        with run_lock(run_dir):
            return train(cfg, run_dir)
    return locked


def read_holder(text: str) -> dict:
    """The holder's note; {} while it is being written or if it is not ours."""
    try:
        holder = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return holder if isinstance(holder, dict) else {}


def describe(holder: dict) -> str:
    if "pid" not in holder:
        return "another process (it has not written its name yet)"
    return f"pid {holder['pid']} on host {holder['host']} (since {holder['since']})"
