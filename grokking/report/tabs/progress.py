"""Tab 7, Progress measures (Nanda et al. 2023): restricted and excluded loss beside the train and
validation loss with the phases drawn in (one-layer transformers), and the logits' cosine
coefficient per frequency over the snapshots with the residual share ((a + b) mod p)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from grokking.metrics import progress_problem
from grokking.report.tabs import Tab
from grokking.report.tabs.common import curves, draw_marks, layout, series

LOSSES = (("train/loss", "#1f77b4"), ("val/loss", "#d62728"), ("restricted_loss", "#2ca02c"),
          ("excluded_loss", "#9467bd"))
SHOWN_FREQS = 8


def build(run) -> Tab:
    figures, notes = [], []
    why_restricted = progress_problem(run.cfg, run.model, run.data)
    if why_restricted is None:
        figures.append(loss_figure(run))
    else:
        notes.append(f"no restricted/excluded loss: it {why_restricted}.")
    snaps = [s for s in run.snapshots if "cos_sim" in s.stats]
    if snaps:
        figures.append(coefficient_figure(run, snaps))
    if not figures:
        return Tab("Progress measures", absent=" ".join(notes) + " No cosine coefficients either: they need "
                   "(a + b) mod p with an odd p.")
    return Tab("Progress measures", figures, notes)


def loss_figure(run) -> go.Figure:
    records = curves(run) if any("restricted_loss" in r for r in run.history) else [s.stats for s in run.snapshots]
    fig = go.Figure()
    for key, colour in LOSSES:
        steps, values = series(records if key.endswith("ed_loss") else curves(run), key)
        fig.add_trace(go.Scatter(x=steps, y=values, name=key, line={"color": colour}, mode="lines+markers",
                                 marker={"size": 3}))
    fig.update_xaxes(type="log", title="step")
    fig.update_yaxes(type="log", title="cross-entropy")
    draw_marks(fig, run, log_x=True)
    return layout(fig, "Restricted loss (key frequencies only, validation) and excluded loss (without them, train)", 450)


def coefficient_figure(run, snaps) -> go.Figure:
    steps = [s.step for s in snaps]
    cos_sim = np.stack([s.stats["cos_sim"] for s in snaps])  # (snapshots, K)
    strongest = np.argsort(-np.abs(cos_sim[-1]))[:SHOWN_FREQS]
    fig = go.Figure()
    for k in range(cos_sim.shape[1]):
        fig.add_trace(go.Scatter(x=steps, y=cos_sim[:, k].astype(np.float32), name=f"k={k + 1}", mode="lines",
                                 visible=True if k in strongest else "legendonly"))
    fig.add_trace(go.Scatter(x=steps, y=[s.stats["logit_residual"] for s in snaps], name="residual",
                             line={"color": "black", "dash": "dash"}))
    fig.update_xaxes(title="step")
    fig.update_yaxes(title="cosine similarity with the logits")
    draw_marks(fig, run, annotate=False)
    return layout(fig, "The logits' cosine similarity with cos(w(a+b-c)) per frequency, and the residual "
                       f"(the {SHOWN_FREQS} strongest shown; click the legend for the rest)", 450)
