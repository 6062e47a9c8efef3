"""A study's page: ``<study folder>/study.html`` (one self-contained file, plotly inside) with the
figure and the published points, the aggregated table, and every run of the grid (missing ones
too); ``study.csv`` beside it holds the table. Written at the end of the grid (and logged to W&B
when the grid logs there) and by ``python -m grokking.study <folder>`` at any time."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import plotly.graph_objects as go
from omegaconf import DictConfig, OmegaConf

from grokking import schema
from grokking.report.page import render, write_page
from grokking.report.tabs import Tab
from grokking.report.tabs.common import layout
from grokking.study import aggregate, definition
from grokking.study.figure import figures
from grokking.study.outcomes import describe

log = logging.getLogger(__name__)
PAGE_FILE = "study.html"
WANDB_FOLDER = "wandb_study"  # the W&B run of the study's page, beside the runs


def fmt(value: float | None) -> str:
    if value is None:
        return ""
    return "never" if math.isinf(value) else f"{value:.4g}"


def table_height(rows: int) -> int:
    """Pixels for a plotly table of ``rows`` rows under a title (the layout's margins take 110)."""
    return 150 + 30 * rows


def table_figure(study, keys: list[str], cells: list[aggregate.Cell], refs: dict) -> go.Figure:
    """The aggregated table (the CSV's rows)."""
    phase = str(study.outcome) == "phase"
    head = [*keys, "reached / known", "phase" if phase else "median", "" if phase else "q1 – q3",
            "unfinished", "missing", "published"]
    rows = []
    for cell in cells:
        if phase:
            counts = cell.phases()
            stats = [", ".join(f"{p} {n}" for p, n in counts.most_common()), ""]
        else:
            q1, q3 = cell.quantile(0.25), cell.quantile(0.75)
            stats = [fmt(cell.quantile(0.5)), f"{fmt(q1)} – {fmt(q3)}" if q1 is not None else ""]
        published = "; ".join(aggregate.published(r) for r in refs[tuple(cell.point.values())])
        rows.append([*cell.point.values(), f"{len(cell.reached)} / {len(cell.known)}", *stats, len(cell.pending),
                     len(cell.missing), published])
    columns = [list(col) for col in zip(*rows)] if rows else [[] for _ in head]
    fig = go.Figure(go.Table(header={"values": head, "align": "left"}, cells={"values": columns, "align": "left"}))
    return layout(fig, f"{describe(study)}: per grid point, over {', '.join(study.repeat)}", table_height(len(rows)))


def runs_figure(cells: list[aggregate.Cell], folder: Path) -> go.Figure:
    """Every run of the grid with its status and outcome; grid points without a run as missing."""
    rows = []
    for cell in cells:
        for run in cell.runs:
            rows.append([run.run_dir.name, run.status, aggregate.shown_value(run)])
        for point in cell.missing:
            rows.append([",".join(f"{k}={v}" for k, v in point.items()), "missing", "not run yet"])
    columns = [list(col) for col in zip(*rows)] if rows else [[], [], []]
    fig = go.Figure(go.Table(header={"values": ["run", "status", "outcome (>N: not reached within N steps)"],
                                     "align": "left"}, cells={"values": columns, "align": "left"}))
    return layout(fig, f"Runs in {folder}", table_height(len(rows)))


def notes(study, cells: list[aggregate.Cell]) -> list[str]:
    missing = sum(len(c.missing) for c in cells)
    pending = sum(len(c.pending) for c in cells)
    over = ", ".join(study.repeat)
    drawn = {"line": f"lines: median over {over}; error bars: interquartile range; faint points: every run; open "
                     "triangles: runs that ended without reaching it, at the step they ended",
             "heatmap": f"cells: median over {over}; (k/n): k of the n runs reached it; never: none did within "
                        "their steps",
             "phase": f"cells: the most common phase over {over} and how many runs had it"}[str(study.figure)]
    out = [f"Outcome: {describe(study)}, read at the evaluated steps. The figure's {drawn}; stars: published points."]
    out += [note for note in (study.note, study.scale_note) if note]
    if missing or pending:
        out.append(f"{missing} run(s) of the grid have not run and {pending} have not finished: "
                   "the same command again trains only those.")
    sources = sorted({r.source for r in study.reference})
    out.append("Published points: " + ("; ".join(sources) if sources else "none given by the study") + ".")
    return out


def write_study_page(folder: Path) -> Path:
    """Write ``study.html`` and ``study.csv`` into a study folder; return the page."""
    folder = Path(folder)
    study, values, scale = definition.load(folder)
    keys, cells = aggregate.collect(folder, study, values)
    refs = aggregate.references_by_cell(study, cells)
    aggregate.write_csv(folder / aggregate.CSV_FILE, keys, cells, study, refs)
    total = sum(len(c.runs) + len(c.missing) for c in cells)
    known = sum(len(c.known) for c in cells)
    meta = [f"{study.source}. Study {study.name}, scale {scale}: the outcome of {known} of {total} runs is known; "
            f"table: {aggregate.CSV_FILE}", "grid: " + "; ".join(f"{k} = {', '.join(v)}" for k, v in values.items())]
    tabs = [Tab("Figure", figures(study, keys, cells), notes=notes(study, cells)),
            Tab("Table", [table_figure(study, keys, cells, refs)]),
            Tab("Runs", [runs_figure(cells, folder)])]
    return write_page(folder / PAGE_FILE, render(f"grokking study: {study.title}", meta, tabs))


def after_grid(config: DictConfig) -> Path | None:
    """The page of a study's grid, once its jobs have ended (nothing for a grid without a study);
    logged to W&B in the grid's group when the grid logs there. A page that cannot be made costs a
    warning: the runs are complete without it."""
    if OmegaConf.select(config, "study") is None:
        return None
    folder = Path(str(config.hydra.sweep.dir))
    try:
        with study_logger(config, folder) as logger:
            page = write_study_page(folder)
            logger.html("study", page)
    except Exception as e:  # noqa: BLE001 - the page is a view of runs that are all on disk
        log.warning("no study page for %s: %s: %s", folder, type(e).__name__, e)
        print(f"grokking: warning: no study page for {folder}: {type(e).__name__}: {e}", flush=True)
        return None
    print(f"[grokking] study page: {page} (table: {folder / aggregate.CSV_FILE})", flush=True)
    return page


def study_logger(config: DictConfig, folder: Path):
    """A W&B run for the page, in the grid's group, named after the study (a NullLogger without W&B)."""
    from grokking.loggers import NullLogger, make_logger  # wandb: only where the grid logs there

    if OmegaConf.select(config, "logger.name") != "wandb":
        return NullLogger()
    plain = schema.plain(config)
    cfg = OmegaConf.create(plain)
    cfg.logger.group = cfg.logger.get("group") or folder.name
    cfg.logger.run_name = f"study {cfg.study.name} ({cfg.scale})"
    return make_logger(cfg, folder / WANDB_FOLDER, config=plain)
