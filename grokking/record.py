"""The run record: the files a run leaves in its folder, which other tools read.

    metrics.jsonl         one JSON object per evaluation: step, train/loss, train/acc, val/loss, ...
    summary.json          status, final values, milestones, wall time, device (rewritten atomically)
    checkpoints/last.pt   everything needed to continue exactly (model, optimizer, RNG, step, config)
    checkpoints/step_XXXXXXX.pt  periodic snapshots, the same full state: analysis reads their
                          model, and a run whose last.pt is unreadable continues from the newest
    .hydra/               Hydra's composed config, overrides and hydra settings
    run.lock              held by the process training in the folder (grokking/runlock.py)

Every write either appends a whole line or replaces a file atomically, so a run killed at any
moment leaves a readable record up to its last evaluation. A full disk stops the run with
``NoSpace`` naming the file; the write it cut short leaves no temporary file or partial line.
"""
from __future__ import annotations

import errno
import io
import json
import logging
import math
import os
import pickle
import sys
from contextlib import contextmanager
from pathlib import Path

import torch

from grokking import schema
from grokking.errors import ConfigError, NoSpace
from grokking.progress import ConsoleHandler

log = logging.getLogger(__name__)
log.addHandler(logging.NullHandler())  # warn() prints its own stderr line: no second one from logging's fallback

# errno values that mean the disk (or the quota, or the file size limit) has no room for a write
NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextmanager
def writing(path: Path):
    """Turn a full-disk OSError raised inside into ``NoSpace`` naming ``path``."""
    try:
        yield
    except OSError as e:
        if e.errno not in NO_ROOM or isinstance(e, NoSpace):
            raise
        raise NoSpace(f"{os.strerror(e.errno).lower()} writing {path}") from None


def atomic_write(path: Path, write) -> None:
    """Write through a temporary file and rename it over ``path``; on failure remove the
    temporary file and leave ``path`` as it was."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with writing(path):
            write(tmp)
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_warned: set[str] = set()  # resume=<folder> reads the checkpoint twice: say each thing once


def warn(message: str) -> None:
    """A warning for the log (Hydra's train.log) and one line on stderr, once per process."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)
        if not any(isinstance(h, ConsoleHandler) for h in logging.getLogger().handlers):
            print(f"grokking: warning: {message}", file=sys.stderr)  # no job logging shows it (not under Hydra)


def jsonable(value):
    """Floats that JSON cannot hold (nan, inf) become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


class RunRecord:
    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir)
        self.metrics_path = self.dir / "metrics.jsonl"
        self.summary_path = self.dir / "summary.json"
        self.checkpoint_dir = self.dir / "checkpoints"  # made by the first save: reading creates nothing

    # --- metrics.jsonl -----------------------------------------------------------------------
    def read_metrics(self) -> list[dict]:
        """All complete lines; a line cut short by a kill is ignored."""
        if not self.metrics_path.exists():
            return []
        records = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
        return records

    def keep_metrics_until(self, step: int) -> list[dict]:
        """Drop the evaluations after ``step`` (they are redone by a resumed run); return the rest."""
        kept = [r for r in self.read_metrics() if r["step"] <= step]
        atomic_write(self.metrics_path, lambda tmp: tmp.write_text("".join(json.dumps(r) + "\n" for r in kept)))
        return kept

    def append(self, record: dict) -> None:
        """Add one line; a write cut short (full disk) is taken back, leaving no partial line."""
        line = memoryview((json.dumps(jsonable(record)) + "\n").encode())
        with writing(self.metrics_path), open(self.metrics_path, "ab", buffering=0) as f:
            end = f.seek(0, os.SEEK_END)
            try:
                while line:
                    line = line[f.write(line):]
            except OSError:
                f.truncate(end)
                raise

    # --- summary.json ------------------------------------------------------------------------
    def write_summary(self, summary: dict) -> None:
        text = json.dumps(jsonable(summary), indent=2) + "\n"
        atomic_write(self.summary_path, lambda tmp: tmp.write_text(text))

    def write_summary_if_room(self, summary: dict) -> None:
        """The summary of a run that is ending on an error: on a full disk the last complete
        summary stays, and the error being raised is the one reported."""
        try:
            self.write_summary(summary)
        except NoSpace:
            pass

    def read_summary(self) -> dict:
        return json.loads(self.summary_path.read_text()) if self.summary_path.exists() else {}

    # --- checkpoints -------------------------------------------------------------------------
    @property
    def last_path(self) -> Path:
        return self.checkpoint_dir / "last.pt"

    def save(self, state: dict, snapshot: bool) -> None:
        """Write ``last.pt``; with ``snapshot`` also keep the same state as ``step_XXXXXXX.pt``
        (for analysis, and to continue from if ``last.pt`` is lost)."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()  # serialised once for both files; torch.save to a path would hide ENOSPC
        torch.save(state, buffer)
        paths = [self.last_path] + ([self.checkpoint_dir / f"step_{state['step']:07d}.pt"] if snapshot else [])
        for path in paths:
            atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))

    def load_last(self) -> dict | None:
        """The state to continue from: ``last.pt``, or where that is unreadable (a copy cut
        short, a full disk) the newest snapshot that loads, with a warning; None for a new run."""
        snapshots = self.snapshots()[::-1]
        if not snapshots and not self.last_path.exists():
            return None
        problems = []
        for path in [self.last_path, *snapshots]:
            state, problem = load_checkpoint(path)
            if problem is None:
                if problems:
                    warn(f"{self.dir}: {'; '.join(problems)}; continuing from {path.relative_to(self.dir)} "
                         f"(step {state['step']})")
                return state
            problems.append(f"{path.relative_to(self.dir)} {problem}")
        raise ConfigError(f"no checkpoint to continue from in {self.dir}: {'; '.join(problems)}; "
                          "restore a copy of the folder or remove it to start afresh")

    def snapshots(self) -> list[Path]:
        return sorted(self.checkpoint_dir.glob("step_*.pt"))

    # --- .hydra ------------------------------------------------------------------------------
    def hydra_files(self) -> dict[str, str]:
        folder = self.dir / ".hydra"
        return {p.name: p.read_text() for p in folder.glob("*.yaml")} if folder.exists() else {}

    def restore_hydra_files(self, files: dict[str, str]) -> None:
        """Put back the .hydra files of the stored run (Hydra overwrote them on this launch)."""
        for name, text in files.items():
            (self.dir / ".hydra" / name).write_text(text)


def load_checkpoint(path: Path) -> tuple[dict | None, str | None]:
    """(the state in ``path``, None), or (None, why it cannot be continued from)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        return None, "is missing"
    except (RuntimeError, EOFError, pickle.UnpicklingError) as e:
        return None, f"is unreadable ({str(e).split('. ')[0] or type(e).__name__})"
    if "optimizer" not in state:
        return None, "holds only the model (a snapshot from before snapshots kept the full state)"
    return state, None


def config_changes(stored: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ, as ``key: old -> new``."""
    changes = []
    for key in sorted(set(stored) | set(current)):
        old, new = stored.get(key, "<absent>"), current.get(key, "<absent>")
        if isinstance(old, dict) and isinstance(new, dict):
            changes += config_changes(old, new, f"{prefix}{key}.")
        elif old != new:
            changes.append(f"{prefix}{key}: {old} -> {new}")
    return changes


def check_same_run(stored: dict, current: dict, run_dir: Path) -> None:
    """A run is continued only under its identity: its shape and member keys (grokking/schema.py)."""
    changes = config_changes(schema.identity(stored), schema.identity(current))
    if changes:
        may_change = ", ".join(k for k in schema.runtime_keys() if "." not in k)
        raise ConfigError(
            f"{run_dir} holds a run with another config ({'; '.join(changes)}); only "
            f"{may_change} may change when continuing a run: "
            "use another out_dir or remove the folder to start afresh"
        )
