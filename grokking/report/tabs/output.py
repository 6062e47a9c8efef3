"""Tab 4, Model output: the predicted answer and its correctness over all (a, b) with the training
pairs marked (a slider over the snapshots), the operation's table and how often each answer
occurs in it (seed 001's value counts)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from grokking.report.tabs import Tab
from grokking.report.tabs.common import arr, grid_of, layout, pairs_problem

# cell codes of the correctness map: -1 for a pair the operation leaves out, then wrong/right x
# validation/train pair (int8 per cell and snapshot keeps the slider's data small)
OUTCOMES = ("not in the table", "validation, wrong", "validation, right", "train, wrong", "train, right")
OUTCOME_COLOURS = ("#ffffff", "#d62728", "#98df8a", "#8c564b", "#1f77b4")


def build(run) -> Tab:
    if not run.data.n_values:
        return Tab("Model output", absent="the inputs are not pairs of tokens (a, b); there is no table to draw")
    if pairs_problem(run.data):
        return Tab("Model output", absent=pairs_problem(run.data))
    n = run.data.n_values
    with torch.no_grad():
        predicted = run.model(run.data.inputs).argmax(dim=-1)
    in_train = torch.zeros(len(run.data.labels), dtype=torch.int8)
    in_train[run.data.train_idx] = 1
    notes = [f"{len(run.data.train_idx)} training and {len(run.data.val_idx)} validation pairs; at step "
             f"{run.last.step} the model answers {float((predicted == run.data.labels).float().mean()):.1%} of the table right."]
    figures = [correctness_figure(run, in_train), tables_figure(run, predicted), counts_figure(run, predicted, n)]
    return Tab("Model output", figures, notes)


def correctness_figure(run, in_train: torch.Tensor) -> go.Figure:
    n, snaps = run.data.n_values, run.snapshots
    levels = len(OUTCOMES)
    scale = [[edge / levels, colour] for index, colour in enumerate(OUTCOME_COLOURS) for edge in (index, index + 1)]
    legend = ", ".join(f"{code - 1} {name}" for code, name in enumerate(OUTCOMES))
    fig = go.Figure()
    for i, snap in enumerate(snaps):
        code = grid_of(2 * in_train.numpy() + snap.stats["correct"], run.data.inputs, n, fill=-1).astype(np.int8)
        fig.add_trace(go.Heatmap(z=code, zmin=-1.5, zmax=levels - 1.5, colorscale=scale, visible=i == len(snaps) - 1,
                                 hovertemplate="a=%{y}, b=%{x}: %{z}<extra>" + legend + "</extra>",
                                 colorbar={"tickvals": list(range(-1, levels - 1)), "ticktext": list(OUTCOMES)}))
    steps = [{"method": "update", "label": f"{s.step}{' (init)' if s.rebuilt else ''}",
              "args": [{"visible": [j == i for j in range(len(snaps))]}]} for i, s in enumerate(snaps)]
    fig.update_layout(sliders=[{"active": len(snaps) - 1, "steps": steps, "currentvalue": {"prefix": "step "},
                                "pad": {"t": 40}}])
    fig.update_xaxes(title="b")
    fig.update_yaxes(title="a", autorange="reversed", scaleanchor="x")
    return layout(fig, "Which pairs the model gets right (slider: snapshot)", 600)


def tables_figure(run, predicted: torch.Tensor) -> go.Figure:
    n = run.data.n_values
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"predicted answer at step {run.last.step}",
                                                        "the operation's table (true answer)"))
    for col, values in ((1, predicted), (2, run.data.labels)):
        fig.add_trace(go.Heatmap(z=grid_of(values, run.data.inputs, n), colorscale="Viridis", showscale=col == 2,
                                 hovertemplate="a=%{y}, b=%{x}: %{z}<extra></extra>"), row=1, col=col)
    fig.update_xaxes(title="b")
    fig.update_yaxes(title="a", autorange="reversed")
    return layout(fig, "Answers over all (a, b) (blank: pairs the operation leaves out)", 480)


def counts_figure(run, predicted: torch.Tensor, n: int) -> go.Figure:
    fig = go.Figure()
    for name, values in (("table", run.data.labels), ("predicted", predicted)):
        counts = torch.bincount(values.long(), minlength=run.data.n_classes)
        fig.add_trace(go.Bar(x=np.arange(len(counts)), y=arr(counts, np.int32), name=name, opacity=0.8))
    fig.update_xaxes(title="answer")
    fig.update_yaxes(title="pairs")
    return layout(fig, "How often each answer occurs (an uneven table is easier to guess)", 330)
