"""What several tabs share: arrays for plotly, curves from the record, the milestones and the
three phases of Nanda et al. drawn on step axes."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from grokking.milestones import milestones

PHASE_COLOURS = {"memorisation": "rgba(255,165,0,0.10)", "circuit formation": "rgba(0,128,255,0.10)",
                 "clean-up": "rgba(0,160,0,0.10)"}


def arr(values, dtype=np.float32) -> np.ndarray:
    """A compact numpy array (plotly writes numpy arrays base64-encoded into the page)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def series(records: list[dict], key: str, positive_steps: bool = True) -> tuple[list, list]:
    """(steps, values) of ``key`` where it was logged; step 0 left out for log axes."""
    pairs = [(r["step"], r[key]) for r in records
             if isinstance(r.get(key), (int, float)) and (r["step"] > 0 or not positive_steps)]
    return [s for s, _ in pairs], [v for _, v in pairs]


def curves(run) -> list[dict]:
    """The evaluations: metrics.jsonl, or the snapshots' evaluations for a run without one."""
    return run.history or [s.stats for s in run.snapshots]


def marks(run) -> dict:
    return milestones(curves(run), run.cfg.memorize_at, run.cfg.grok_at)


def first_after(records: list[dict], start: int, test) -> int | None:
    for r in records:
        if r["step"] > start and test(r):
            return r["step"]
    return None


def phases(run) -> list[tuple[str, int, int]]:
    """Nanda et al.'s (2023) three phases as (name, first step, last step), placed by rules:

    memorisation ends when the train accuracy reaches memorize_at (steps_to_memorize);
    circuit formation ends when the Fourier circuit alone starts to predict held-out pairs: the
    restricted loss has halved from its value at memorisation (without the progress measures: the
    validation loss has halved from its peak after memorisation); clean-up ends when the
    validation loss has come within a factor 2 of the restricted loss (without them: at
    steps_to_grok). A phase that has not ended by the last evaluation is drawn to it.
    """
    records = curves(run)
    mem = marks(run)["steps_to_memorize"]
    if mem is None or not records:
        return []
    last = records[-1]["step"]
    after = [r for r in records if r["step"] >= mem]
    restricted = [r for r in after if r.get("restricted_loss") is not None]
    if restricted:
        start = restricted[0]["restricted_loss"]
        formed = first_after(restricted, mem, lambda r: r["restricted_loss"] <= start / 2)
        cleaned = formed and first_after(
            restricted, formed, lambda r: r.get("val/loss") is not None and r["val/loss"] <= 2 * r["restricted_loss"])
    else:
        peak = max((r["val/loss"] for r in after if r.get("val/loss") is not None), default=None)
        formed = peak and first_after(after, mem, lambda r: (r.get("val/loss") or peak) <= peak / 2)
        grok = marks(run)["steps_to_grok"]
        cleaned = grok if formed and grok and grok >= formed else None
    first = next(r["step"] for r in records if r["step"] > 0)  # the first step a log axis shows
    out = [("memorisation", first, mem), ("circuit formation", mem, formed or last)]
    if formed:
        out.append(("clean-up", formed, cleaned or last))
    return out


def draw_marks(fig: go.Figure, run, annotate: bool = True, log_x: bool = False) -> None:
    """The milestones as dashed lines and the phases as shaded bands on every step axis, the
    phases named on the first one (plotly places shapes by the step, annotations on a log axis by
    its log10).

    The shapes are written as plain dicts in one layout update: plotly's ``add_vrect(row="all")``
    validates the whole shape list again for every shape it adds, a quarter of a report's time."""
    spans, reached = phases(run), marks(run)
    shapes = []
    for xref, yref in step_axes(fig):
        for name, start, end in spans:
            shapes.append({"type": "rect", "xref": xref, "yref": f"{yref} domain", "x0": start, "x1": end, "y0": 0,
                           "y1": 1, "fillcolor": PHASE_COLOURS[name], "line": {"width": 0}, "layer": "below"})
        for key, dash in (("steps_to_memorize", "dot"), ("steps_to_grok", "dash")):
            if reached[key]:
                shapes.append({"type": "line", "xref": xref, "yref": f"{yref} domain", "x0": reached[key],
                               "x1": reached[key], "y0": 0, "y1": 1, "line": {"dash": dash, "color": "grey"}})
    fig.update_layout(shapes=[*fig.layout.shapes, *shapes])
    if annotate:
        for name, start, _ in spans:
            fig.add_annotation(x=math.log10(start) if log_x else start, y=1, xref="x", yref="y domain", text=name,
                               showarrow=False, xanchor="left", yanchor="bottom", font={"size": 10})


def step_axes(fig: go.Figure) -> list[tuple[str, str]]:
    """(x axis, y axis) references of each subplot of ``fig``: ("x", "y"), ("x2", "y2"), ..."""
    axes = [key for key in fig.layout.to_plotly_json() if key.startswith("xaxis")] or ["xaxis"]
    refs = []
    for key in sorted(axes, key=lambda k: int(k[5:] or 1)):
        anchor = fig.layout[key].anchor
        refs.append((key.replace("axis", ""), anchor if anchor not in (None, "free") else "y" + key[5:]))
    return refs


def layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title=title, height=height, margin={"l": 60, "r": 20, "t": 60, "b": 50},
                      legend={"font": {"size": 10}})
    return fig


def pairs_problem(data) -> str | None:
    """Why a view over the (a, b) table does not apply: a table of three operands (op=add3, expr3)
    would show only the slice its last c writes. None for pairs and for vector inputs."""
    operands = data.inputs.shape[1]
    if data.n_values and operands != 2:
        return f"the table has {operands} operands, and this view draws pairs (a, b)"
    return None


def grid_of(values, inputs, n: int, fill=np.nan) -> np.ndarray:
    """(n, n) table of per-pair ``values`` at [a, b]; pairs missing from the data stay ``fill``."""
    grid = np.full((n, n), fill, dtype=np.float32)
    ab = inputs.cpu().numpy()
    grid[ab[:, 0], ab[:, 1]] = arr(values)
    return grid


def heatmap(z, colorscale="RdBu", zmid=0.0, **kwargs) -> go.Heatmap:
    extra = {"zmid": zmid} if zmid is not None else {}
    return go.Heatmap(z=arr(z), colorscale=colorscale, **extra, **kwargs)


def frequency_names(p: int) -> list[str]:
    """Labels of the rows of the real Fourier basis: const, cos 1, sin 1, ..."""
    return ["const"] + [f"{kind} {k}" for k in range(1, (p - 1) // 2 + 1) for kind in ("cos", "sin")]
