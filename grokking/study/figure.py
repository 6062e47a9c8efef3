"""The study's figure as the paper draws it, with the published points beside it.

- ``line``: the outcome against x, one line per group (the other swept keys): the median over the
  seeds with the interquartile range as error bars, every seed as a faint point, a run that never
  reached the outcome as an open triangle at the step it ended (its median, where half or more
  never did, as a filled triangle "not reached"), the step budget as a dashed line.
- ``heatmap``: the median outcome over (x, y), one panel per group; cells say how many seeds
  reached it, "never" where none did within their steps.
- ``phase``: the most common phase of each (x, y) cell and how many seeds had it.

Published points are black-edged stars labelled with their value or words; their source is in
the legend and on hover.
"""
from __future__ import annotations

import math

import plotly.graph_objects as go

from grokking.compare import as_number, sort_key
from grokking.report.tabs.common import layout
from grokking.study.aggregate import Cell, same
from grokking.study.outcomes import PHASES, describe

PHASE_COLOURS = {"comprehension": "#2ca02c", "grokking": "#ff7f0e", "memorisation": "#1f77b4", "confusion": "#7f7f7f"}
REFERENCE = {"symbol": "star", "size": 14, "line": {"width": 1.5, "color": "black"}}


def colour(i: int) -> str:
    return f"hsl({(i * 67) % 360},65%,45%)"


def point_label(point: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={point[k]}" for k in keys) or "all runs"


def numeric(values) -> bool:
    return all(isinstance(as_number(str(v)), (int, float)) for v in values)


def axis_value(value, is_numeric: bool):
    return as_number(str(value)) if is_numeric else str(value)


def figures(study, keys: list[str], cells: list[Cell]) -> list[go.Figure]:
    """The study's figure (one per group for heat maps and phase diagrams)."""
    kind = str(study.figure)
    if kind == "line":
        return [line_figure(study, keys, cells)]
    groups = keys[:-2]
    panels: dict[tuple, list[Cell]] = {}
    for cell in cells:
        panels.setdefault(tuple(cell.point[k] for k in groups), []).append(cell)
    draw = heatmap_figure if kind == "heatmap" else phase_figure
    return [draw(study, panel, point_label(panel[0].point, groups) if groups else "") for panel in panels.values()]


# --- line ----------------------------------------------------------------------------------------
def line_figure(study, keys: list[str], cells: list[Cell]) -> go.Figure:
    groups = keys[:-1]
    is_numeric = numeric(c.point[study.x] for c in cells)
    lines: dict[tuple, list[Cell]] = {}
    for cell in cells:
        lines.setdefault(tuple(cell.point[k] for k in groups), []).append(cell)
    fig = go.Figure()
    for i, (values, members) in enumerate(lines.items()):
        name = point_label(dict(zip(groups, values)), groups) if groups else f"median over {', '.join(study.repeat)}"
        add_seeds(fig, study, members, name, colour(i), is_numeric)
        add_medians(fig, study, members, name, colour(i), is_numeric)
    add_references(fig, study, [(r, r.x, r.value) for r in study.reference], is_numeric, lines_of(lines, groups))
    if study.budget:
        fig.add_hline(y=study.budget, line_dash="dash", line_color="#888")
        # an annotation's y on a log axis is in decades (a shape's is not)
        fig.add_annotation(x=1, xref="x domain", xanchor="right", yanchor="top", showarrow=False,
                           y=math.log10(study.budget) if study.log_y else study.budget,
                           text=f"budget {study.budget:g} steps")
    if is_numeric:
        fig.update_xaxes(title=study.x, type="log" if study.log_x else None)
    else:  # names in the grid's order (the cells come in it)
        order = list(dict.fromkeys(str(c.point[study.x]) for c in cells))
        fig.update_xaxes(title=study.x, type="category", categoryorder="array", categoryarray=order)
    fig.update_yaxes(title=describe(study), type="log" if study.log_y else None)
    return layout(fig, study.title, 520)


def lines_of(lines: dict, groups: list[str]) -> dict[str, str]:
    """{reference group "key=value": the colour of its line}."""
    out = {}
    for i, values in enumerate(lines):
        for key, value in zip(groups, values):
            out[f"{key}={value}"] = colour(i)
    return out


def add_seeds(fig: go.Figure, study, cells: list[Cell], name: str, line_colour: str, is_numeric: bool) -> None:
    """Every seed as a faint point; never reached as an open triangle at the step it ended."""
    reached = [(c, r) for c in cells for r in c.reached]
    never = [(c, r) for c in cells for r in c.not_reached]
    for runs, symbol, opacity, what in ((reached, "circle", 0.35, ""), (never, "triangle-up-open", 0.8, "not reached within ")):
        if not runs:
            continue
        ys = [r.outcome.value if r.outcome.reached else r.outcome.steps for _, r in runs]
        fig.add_trace(go.Scatter(
            x=[axis_value(c.point[study.x], is_numeric) for c, _ in runs], y=ys, mode="markers", legendgroup=name,
            showlegend=False, marker={"symbol": symbol, "size": 9, "color": line_colour, "opacity": opacity},
            hovertext=[f"{r.run_dir.name} ({r.repeat}): {what}{y:g}{' steps' if what else ''}" for (_, r), y in zip(runs, ys)],
            hoverinfo="text"))


def add_medians(fig: go.Figure, study, cells: list[Cell], name: str, line_colour: str, is_numeric: bool) -> None:
    """Median and interquartile range where at least half the seeds reached the outcome; a filled
    triangle at the longest run's last step where the median is "never"."""
    xs, ys, plus, minus, texts, never = [], [], [], [], [], []
    for cell in cells:
        median = cell.quantile(0.5)
        if median is None:
            continue
        x = axis_value(cell.point[study.x], is_numeric)
        count = f"{len(cell.reached)}/{len(cell.known)} reached"
        if math.isinf(median):
            never.append((x, max(r.outcome.steps for r in cell.known), count))
            continue
        q1, q3 = cell.quantile(0.25), cell.quantile(0.75)
        top = max((r.outcome.steps for r in cell.not_reached), default=q3) if math.isinf(q3) else q3
        xs.append(x)
        ys.append(median)
        plus.append(top - median)
        minus.append(median - q1)
        texts.append(f"{name}: median {median:g}, quartiles {q1:g} to {'never' if math.isinf(q3) else f'{q3:g}'} ({count})")
    mode = "lines+markers" if is_numeric else "markers"
    fig.add_trace(go.Scatter(x=xs, y=ys, mode=mode, name=name, legendgroup=name, line={"color": line_colour},
                             showlegend=bool(xs),
                             marker={"size": 9, "color": line_colour},
                             error_y={"type": "data", "array": plus, "arrayminus": minus, "visible": True},
                             hovertext=texts, hoverinfo="text"))
    if never:
        # above the open triangles of the runs themselves, which end at the same step
        fig.add_trace(go.Scatter(x=[x for x, _, _ in never], y=[y * 1.15 for _, y, _ in never], mode="markers+text",
                                 legendgroup=name, name=name, showlegend=not xs, text=["not reached"] * len(never),
                                 textposition="top center", marker={"symbol": "triangle-up", "size": 11,
                                                                    "color": line_colour},
                                 hovertext=[f"{name}: median not reached within {y:g} steps ({c})" for _, y, c in never],
                                 hoverinfo="text"))


def add_references(fig: go.Figure, study, refs: list[tuple], is_numeric: bool, colours: dict | None = None) -> None:
    """Published points: (reference, x, y) drawn as stars, one legend entry per source."""
    by_source: dict[str, list[tuple]] = {}
    for ref, x, y in refs:
        if y is not None:
            by_source.setdefault(ref.source, []).append((ref, x, y))
    for source, items in by_source.items():
        fills = [(colours or {}).get(ref.group, "white") for ref, _, _ in items]
        fig.add_trace(go.Scatter(
            x=[axis_value(x, is_numeric) for _, x, _ in items], y=[y for _, _, y in items],
            mode="markers+text", name=f"published: {source}",
            text=[ref.label or (f"{ref.value:g}" if ref.value is not None else "") for ref, _, _ in items],
            textposition="middle right", textfont={"size": 10}, marker={**REFERENCE, "color": fills},
            hovertext=[f"published ({source}): {ref.label or f'{ref.value:g}'}"
                       + (f" [{ref.group}]" if ref.group else "") for ref, _, _ in items], hoverinfo="text"))


# --- heat map and phase diagram ---------------------------------------------------------------------
def labels(key: str, cells: list[Cell], published: list) -> list[str]:
    """The axis's categories: the grid's values of ``key`` and the published ones, in order."""
    found = list(dict.fromkeys(str(c.point[key]) for c in cells))
    for value in published:
        if value is not None and not any(same(value, f) for f in found):
            found.append(str(value))
    return sorted(found, key=sort_key)


def label_of(value, axis: list[str]) -> str:
    return next(a for a in axis if same(value, a))


def grid_figure(study, cells: list[Cell], cell_value, trace_args: dict, title: str) -> go.Figure:
    """A heat map over (x, y): ``cell_value(cell)`` gives each cell's (z, text); published points
    are stars on their own cells, also where the grid has none."""
    xs = labels(study.x, cells, [r.x for r in study.reference])
    ys = labels(study.y, cells, [r.y for r in study.reference])
    z = [[None] * len(xs) for _ in ys]
    text = [[""] * len(xs) for _ in ys]
    for cell in cells:
        i, j = ys.index(str(cell.point[study.y])), xs.index(str(cell.point[study.x]))
        z[i][j], text[i][j] = cell_value(cell)
    # cells sit at integer positions, named by tick labels: values that look like numbers would
    # otherwise be read as numbers on a category axis, and the stars need positions inside a cell
    fig = go.Figure(go.Heatmap(z=z, x=list(range(len(xs))), y=list(range(len(ys))), hoverongaps=False,
                               hovertemplate=f"{study.x}=%{{customdata[0]}}, {study.y}=%{{customdata[1]}}: %{{z}}<extra></extra>",
                               customdata=[[[x, y] for x in xs] for y in ys], **trace_args))
    spots = [(j, i) for i in range(len(ys)) for j in range(len(xs))]
    fig.add_trace(go.Scatter(x=[j for j, _ in spots], y=[i for _, i in spots], text=[text[i][j] for j, i in spots],
                             mode="text", showlegend=False, hoverinfo="skip", textfont={"size": 10}))
    refs = [(r, xs.index(label_of(r.x, xs)), ys.index(label_of(r.y, ys))) for r in study.reference if r.y is not None]
    for trace in reference_markers(refs):
        fig.add_trace(trace)
    fig.update_xaxes(title=study.x, tickvals=list(range(len(xs))), ticktext=xs, range=[-0.5, len(xs) - 0.5],
                     showgrid=False, zeroline=False)
    fig.update_yaxes(title=study.y, tickvals=list(range(len(ys))), ticktext=ys, range=[-0.5, len(ys) - 0.5],
                     showgrid=False, zeroline=False)
    fig.update_layout(legend={"orientation": "h", "y": -0.18})
    return layout(fig, title, 600)


def reference_markers(refs: list[tuple]) -> list[go.Scatter]:
    """Stars in the upper right corner of the cells (by index) that a source published, labelled
    with what it found; the cell's own text stays readable in its middle."""
    by_source: dict[str, list[tuple]] = {}
    for ref, x, y in refs:
        by_source.setdefault(ref.source, []).append((ref, x + 0.3, y + 0.28))
    return [go.Scatter(x=[x for _, x, _ in items], y=[y for _, _, y in items], mode="markers+text",
                       name=f"published: {source}", marker={**REFERENCE, "size": 11, "color": "white"},
                       text=[ref.label or f"{ref.value:g}" for ref, _, _ in items], textposition="middle left",
                       textfont={"size": 9},
                       hovertext=[f"published ({source}): {ref.label or f'{ref.value:g}'}" for ref, _, _ in items],
                       hoverinfo="text")
            for source, items in by_source.items()]


def heatmap_figure(study, cells: list[Cell], panel: str) -> go.Figure:
    def value(cell: Cell) -> tuple:
        median = cell.quantile(0.5)
        finite = median is not None and not math.isinf(median)
        z = (math.log10(max(median, 1)) if study.log_y else median) if finite else None
        return z, cell_text(cell, median)

    colorbar = {"title": "log10 steps" if study.log_y else "value"}
    title = study.title + (f" ({panel})" if panel else "")
    return grid_figure(study, cells, value, {"colorscale": "Viridis", "reversescale": True, "colorbar": colorbar},
                       title)


def cell_text(cell: Cell, median: float | None) -> str:
    """What a cell says: its median (and how many seeds reached it), "never", or why it has none."""
    if not cell.known:
        return "pending" if cell.pending else "missing"
    count = f"{len(cell.reached)}/{len(cell.known)}"
    if math.isinf(median):
        return f"never {count}"
    return f"{median:.0f}" + ("" if len(cell.reached) == len(cell.known) else f" ({count})")


def phase_figure(study, cells: list[Cell], panel: str) -> go.Figure:
    def value(cell: Cell) -> tuple:
        phase = cell.phase()
        if phase is None:
            return None, cell_text(cell, None)
        return PHASES.index(phase), f"{phase} {cell.phases()[phase]}/{len(cell.known)}"

    n = len(PHASES)
    scale = [[edge, PHASE_COLOURS[p]] for k, p in enumerate(PHASES) for edge in (k / n, (k + 1) / n)]
    colorbar = {"tickvals": [k * (n - 1) / n + (n - 1) / (2 * n) for k in range(n)], "ticktext": list(PHASES)}
    title = study.title + (f" ({panel})" if panel else "")
    return grid_figure(study, cells, value,
                       {"colorscale": scale, "zmin": 0, "zmax": n - 1, "colorbar": colorbar, "opacity": 0.75}, title)
