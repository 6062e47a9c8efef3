"""A sweep's report: ``<sweep>/report.html`` with the runs as a sortable table (swept values,
outcomes, status), the phase diagrams and overlaid curves of grokking.compare, and a link to each
run's own report. The run reports load one shared ``<sweep>/plotly.min.js`` by a relative path, so
a hundred runs do not hold a hundred copies of plotly.js, and every page still opens offline."""
from __future__ import annotations

import html
import itertools
import os
from pathlib import Path

import plotly.graph_objects as go
from tqdm import tqdm

from grokking.compare import REPEAT_KEY, fmt, group_runs, load_sweep, outcome_columns, phase_cells, sort_key, swept_keys
from grokking.errors import ConfigError
from grokking.report.page import PLOTLY_FILE, render, untemplated_figures, write_page, write_plotly
from grokking.report.run import REPORT_FILE, write_run_report
from grokking.report.tabs import Tab
from grokking.report.tabs.common import layout

NO_AXIS = "(all runs)"  # the y axis of a phase diagram over one swept key
FAST_TO_SLOW = [[0, "#a1d99b"], [1, "#fdae6b"]]  # light colours: the cells' black text stays readable


def status(final: dict) -> str:
    """The run's status, ``diverged`` for a run stopped by a NaN loss."""
    if final.get("status") == "failed" and "diverged" in str(final.get("error", "")):
        return "diverged"
    return final.get("status", "missing")


def run_reports(folder: Path, run_dirs: list[Path], snapshots: int, device: str, progress: bool) -> dict:
    """Each run's report (or why it has none), all loading the sweep's plotly.min.js."""
    shared = write_plotly(folder)
    pages = {}
    for run_dir in tqdm(run_dirs, desc="report: runs", unit="run", disable=not progress):
        try:
            src = os.path.relpath(shared, run_dir)
            pages[run_dir] = write_run_report(run_dir, snapshots, device, plotly_src=src, progress=False)
        except ConfigError as e:
            pages[run_dir] = str(e)
    return pages


def table_html(folder: Path, runs, run_dirs: list[Path], pages: dict) -> str:
    swept = swept_keys(runs)
    columns = swept + ["status"] + outcome_columns(runs)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["run", *columns])
    rows = []
    for run, run_dir in zip(runs, run_dirs):
        page = pages.get(run_dir)
        name = html.escape(str(run_dir.relative_to(folder)))
        link = (f'<a href="{html.escape(os.path.relpath(page, folder))}">{name}</a>' if isinstance(page, Path)
                else f'{name} <span title="{html.escape(str(page))}">(no report)</span>')
        values = {**run.final, **run.params, "status": status(run.final)}
        cells = [f'<td class="text" data-sort="{name}">{link}</td>']
        for col in columns:
            value = values.get(col)
            sort = "" if value is None else html.escape(str(value))
            cls = ' class="text"' if isinstance(sort_key(value)[1], str) else ""
            cells.append(f'<td{cls} data-sort="{sort}">{html.escape(fmt(value))}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<table class="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            '<p class="meta">Click a column to sort; click a run to open its report.</p>')


def phase_figure(runs, x: str, y: str) -> go.Figure:
    """grokking.compare's phase diagram: mean steps_to_grok over (x, y), "never" where no run grokked,
    "diverged" where every run there diverged."""
    cells = phase_cells(runs, x, y)
    xs = sorted({vx for vx, _ in cells}, key=sort_key)
    ys = sorted({vy for _, vy in cells}, key=sort_key)
    z = [[None] * len(xs) for _ in ys]
    text = [[""] * len(xs) for _ in ys]
    for (vx, vy), (grok, n, n_diverged) in cells.items():
        i, j = ys.index(vy), xs.index(vx)
        z[i][j] = grok.mean if grok else None
        if grok is None:
            text[i][j] = f"diverged {n}/{n}" if n_diverged == n else f"never 0/{n}"
        else:
            text[i][j] = fmt(grok.mean) + ("" if grok.n == n else f" ({grok.n}/{n})")
        if 0 < n_diverged < n:
            text[i][j] += f", {n_diverged} div."
    labels_x = [str(v) for v in xs]
    labels_y = [str(v) if v is not None else NO_AXIS for v in ys]
    fig = go.Figure(go.Heatmap(z=z, x=labels_x, y=labels_y, colorscale=FAST_TO_SLOW, hoverongaps=False,
                               colorbar={"title": "steps to grok"}))
    # the cell texts as their own trace: a cell where no run grokked has no colour but says "never"
    cells_xy = [(j, i) for i in range(len(ys)) for j in range(len(xs))]
    fig.add_trace(go.Scatter(x=[labels_x[j] for j, _ in cells_xy], y=[labels_y[i] for _, i in cells_xy],
                             text=[text[i][j] for j, i in cells_xy], mode="text", showlegend=False, hoverinfo="skip"))
    fig.update_xaxes(title=x, type="category")
    fig.update_yaxes(title=y if y != NO_AXIS else "", type="category")
    return layout(fig, f"Phase diagram: mean steps to grok over {x}" + (f" and {y}" if y != NO_AXIS else ""), 420)


def curves_figure(runs, grid: list[str]) -> go.Figure:
    fig = go.Figure()
    for i, (point, members) in enumerate(group_runs(runs, grid).items()):
        label = ", ".join(f"{k}={v}" for k, v in zip(grid, point)) or "all runs"
        for j, run in enumerate(members):
            steps = [(s, a) for s, a in run.curve if s > 0]
            fig.add_trace(go.Scatter(x=[s for s, _ in steps], y=[a for _, a in steps], mode="lines", name=label,
                                     legendgroup=label, showlegend=j == 0, hovertext=run.name,
                                     line={"color": f"hsl({(i * 67) % 360},65%,45%)"}))
    fig.update_xaxes(type="log", title="step")
    fig.update_yaxes(title="validation accuracy", range=[0, 1.02])
    return layout(fig, "Validation accuracy of every run", 460)


def write_sweep_report(folder: Path, snapshots: int, device: str = "auto", progress: bool = True) -> list[Path]:
    run_dirs = [p.parent for p in sorted(Path(folder).rglob("summary.json"))]
    runs = load_sweep(folder)  # the same order: sorted summary.json paths
    pages = run_reports(folder, run_dirs, snapshots, device, progress)
    grid = [k for k in swept_keys(runs) if k != REPEAT_KEY]
    axes = list(itertools.combinations(grid, 2)) or [(grid[0], NO_AXIS)] if grid else []
    with untemplated_figures():
        tabs = [Tab("Phase diagram", [phase_figure(runs, x, y) for x, y in axes],
                    absent=None if axes else "no parameter other than the seed differs between the runs"),
                Tab("Curves", [curves_figure(runs, grid)])]
    counts = {}
    for run in runs:
        counts[status(run.final)] = counts.get(status(run.final), 0) + 1
    meta = [f"{len(runs)} runs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())),
            "swept: " + (", ".join(swept_keys(runs)) or "nothing")]
    text = render(f"grokking sweep: {Path(folder).resolve().name}", meta, tabs, PLOTLY_FILE,
                  table_html(Path(folder), runs, run_dirs, pages))
    written = [p for p in pages.values() if isinstance(p, Path)]
    return written + [write_page(Path(folder) / REPORT_FILE, text)]
