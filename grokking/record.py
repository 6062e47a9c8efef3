"""The run record: the files a run leaves in its folder, which other tools read.

    metrics.jsonl         one JSON object per evaluation: step, train/loss, train/acc, val/loss, ...
    summary.json          status, final values, milestones, wall time, device (rewritten atomically)
    checkpoints/last.pt   everything needed to continue exactly (model, optimizer, RNG, step, config)
    checkpoints/step_XXXXXXX.pt  periodic model snapshots kept for analysis
    .hydra/               Hydra's composed config, overrides and hydra settings

Every write either appends a flushed line or replaces a file atomically, so a run killed at any
moment leaves a readable record up to its last evaluation.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from grokking.errors import ConfigError

# Keys of the composed config that do not change what a run computes: a run may be continued
# with other values for them (more steps, another device or logger, a new checkpoint interval).
RESUMABLE_KEYS = ("steps", "resume", "logger", "device", "threads", "progress", "progress_every_s", "out_dir",
                  "sweep_name", "checkpoint_every", "early_stop", "objective", "objective_penalty", "hydra")



def atomic_write(path: Path, write) -> None:
    """Write through a temporary file and rename it over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


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
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(jsonable(record)) + "\n")

    # --- summary.json ------------------------------------------------------------------------
    def write_summary(self, summary: dict) -> None:
        text = json.dumps(jsonable(summary), indent=2) + "\n"
        atomic_write(self.summary_path, lambda tmp: tmp.write_text(text))

    def read_summary(self) -> dict:
        return json.loads(self.summary_path.read_text()) if self.summary_path.exists() else {}

    # --- checkpoints -------------------------------------------------------------------------
    @property
    def last_path(self) -> Path:
        return self.checkpoint_dir / "last.pt"

    def save(self, state: dict, snapshot: bool) -> None:
        """Write ``last.pt``; with ``snapshot`` also keep the model at this step for analysis."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(self.last_path, lambda tmp: torch.save(state, tmp))
        if snapshot:
            keep = {k: state[k] for k in ("step", "model", "config", "metrics") if k in state}
            path = self.checkpoint_dir / f"step_{state['step']:07d}.pt"
            atomic_write(path, lambda tmp: torch.save(keep, tmp))

    def load_last(self) -> dict | None:
        if not self.last_path.exists():
            return None
        return torch.load(self.last_path, map_location="cpu", weights_only=False)

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


def semantic(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in RESUMABLE_KEYS}


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
    changes = config_changes(semantic(stored), semantic(current))
    if changes:
        raise ConfigError(
            f"{run_dir} holds a run with another config ({'; '.join(changes)}); only "
            f"{', '.join(k for k in RESUMABLE_KEYS if k != 'hydra')} may change when continuing a run: "
            "use another out_dir or remove the folder to start afresh"
        )
