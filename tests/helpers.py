"""Compose configs with Hydra's compose API and run real (small) trainings in a folder."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from grokking.config import compose_config
from grokking.training.loop import train

REPO = Path(__file__).resolve().parent.parent
# The quick recipe: (a+b) mod 47 on the quadratic MLP groks in ~1000 full-batch steps on a CPU.
FAST = ["p=47", "frac=0.5", "progress=none", "report=false"]  # reports: tests/test_report*.py


make_cfg = compose_config


def run(run_dir: Path, overrides: list[str]) -> dict:
    """Train in ``run_dir`` (created if needed) and return the summary."""
    return train(make_cfg(overrides), Path(run_dir))


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def cli(args: list[str], cwd: Path, timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    """``python -m grokking.train ARGS`` in ``cwd`` as a user would type it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **kwargs.pop("env", {})}
    return subprocess.run([sys.executable, "-m", "grokking.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, **kwargs)


@pytest.fixture
def one_thread():
    """One CPU thread in this process while the test runs (the machine is shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
