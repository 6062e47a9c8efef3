"""A run's report: ``<run>/report.html``."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from grokking.report import DEFAULT_SNAPSHOTS
from grokking.report.cache import load_run
from grokking.report.page import render, untemplated_figures, write_page
from grokking.report.tabs import build_tabs

REPORT_FILE = "report.html"


def facts(run) -> list[str]:
    """The lines under the title: what was trained, and how it ended."""
    cfg, summary = run.cfg, run.summary
    model = cfg.model
    shape = (f"{model.depth}-layer transformer, d {model.width}, {model.heads} heads, d_mlp {model.d_mlp}, "
             f"{model.activation}" if model.name == "transformer" else
             f"MLP, {model.depth} x {model.width} {model.activation}")
    task = f"op={OmegaConf.select(cfg, 'op.name')}, p={OmegaConf.select(cfg, 'p')}" if cfg.data.name == "arithmetic" \
        else f"data={cfg.data.name}"
    optim = cfg.optimizer
    shown = [s.step for s in run.snapshots]
    return [f"{task}, frac={OmegaConf.select(cfg, 'split.frac')}; {shape}; {optim.name} lr {optim.lr} wd "
            f"{optim.get('weight_decay')}; seed {cfg.seed}; batch {cfg.batch_size or 'full'}",
            f"status {summary.get('status', 'unknown')} at step {summary.get('step', shown[-1])}; "
            f"wall time {summary.get('wall_time_s', '?')} s; device {summary.get('device', '?')}; "
            f"{len(shown)} snapshots shown (steps {shown[0]} to {shown[-1]})"]


def write_run_report(run_dir: Path, max_snapshots: int = DEFAULT_SNAPSHOTS, device: str = "auto",
                     plotly_src: str | None = None, progress: bool = True) -> Path:
    """Write ``<run_dir>/report.html`` (plotly.js inline unless ``plotly_src`` names a file)."""
    run = load_run(Path(run_dir), max_snapshots, device, progress)
    title = f"grokking report: {Path(run_dir).resolve().name}"
    with untemplated_figures():
        tabs = build_tabs(run)
    return write_page(Path(run_dir) / REPORT_FILE, render(title, facts(run), tabs, plotly_src))
