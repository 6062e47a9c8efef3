"""Tab 1, Training: loss and accuracy over log steps, the milestones and the three phases."""
from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from grokking.report.tabs import Tab
from grokking.report.tabs.common import curves, draw_marks, layout, marks, phases, series

SPLITS = {"train": "#1f77b4", "val": "#d62728"}


def build(run) -> Tab:
    records = curves(run)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("loss", "accuracy"))
    for col, quantity in ((1, "loss"), (2, "acc")):
        for split, colour in SPLITS.items():
            fig.add_trace(go.Scatter(x=series(records, f"{split}/{quantity}")[0],
                                     y=series(records, f"{split}/{quantity}")[1], name=f"{split} {quantity}",
                                     line={"color": colour, "dash": "solid" if quantity == "loss" else "dot"}),
                          row=1, col=col)
        for name, colour in (("restricted_loss", "#2ca02c"), ("excluded_loss", "#9467bd")):
            if quantity == "loss" and series(records, name)[0]:
                fig.add_trace(go.Scatter(x=series(records, name)[0], y=series(records, name)[1], name=name,
                                         mode="lines+markers", line={"color": colour}), row=1, col=1)
    fig.update_xaxes(type="log", title="step")
    fig.update_yaxes(type="log", row=1, col=1)
    draw_marks(fig, run, log_x=True)
    layout(fig, "Loss and accuracy (dotted line: memorised, dashed: grokked; bands: phases)", 450)
    return Tab("Training", [fig], notes(run))


def notes(run) -> list[str]:
    m, summary = marks(run), run.summary
    lines = [f"status {summary.get('status', 'unknown')}, step {summary.get('step', run.last.step)} of "
             f"{summary.get('steps', run.cfg.steps)}; memorised at step {m['steps_to_memorize']}, grokked at step "
             f"{m['steps_to_grok']} (gap {m['grok_gap']})."]
    if summary.get("error"):
        lines.append(f"error: {summary['error']}")
    spans = phases(run)
    if spans:
        lines.append("phases (Nanda et al. 2023): " + "; ".join(f"{n} {a}-{b}" for n, a, b in spans) + ".")
    return lines
