"""Tab 8, Mechanism (one-hidden-layer MLPs; He et al. 2025): each neuron's Fourier IPR, its phase
alignment |sin(psi - 2 phi)|, and the lottery ticket: its strongest frequency at initialisation
against the one it ends with."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from grokking.inspect.mechanism import lottery, mlp_maps, neuron_ipr, phase_alignment
from grokking.metrics import fourier_problem
from grokking.report.tabs import Tab
from grokking.report.tabs.common import arr, layout, pairs_problem


@torch.no_grad()
def build(run) -> Tab:
    maps = mlp_maps(run.model)
    why = maps if isinstance(maps, str) else fourier_problem(run.model, run.data) or pairs_problem(run.data)
    if why:
        return Tab("Mechanism", absent=f"He et al.'s mechanism views {why}")
    token_maps, readout = maps
    p = run.p
    ipr = neuron_ipr(token_maps, p)
    aligned = phase_alignment(token_maps, readout.detach(), p)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("per-neuron Fourier IPR (1: one frequency)",
                                                        "phase misalignment |sin(psi - sum phi)| (0: aligned)"))
    fig.add_trace(go.Histogram(x=arr(ipr), nbinsx=40, xbins={"start": 0, "end": 1, "size": 0.025}, showlegend=False),
                  row=1, col=1)
    fig.add_trace(go.Histogram(x=arr(aligned["misalignment"]), xbins={"start": 0, "end": 1, "size": 0.025},
                               showlegend=False), row=1, col=2)
    fig.update_yaxes(title="neurons", row=1, col=1)
    notes = [f"mean IPR {float(ipr.nanmean()):.3f} (random weights: about {2 / ((p - 1) / 2 + 1):.3f}); median "
             f"misalignment {float(aligned['misalignment'].median()):.3f} (random: about 0.7)."]
    figures = [layout(fig, f"Neurons at step {run.last.step}", 380)]
    if run.initial is None:
        notes.append("no lottery view: the initial model cannot be rebuilt (its init_from is gone).")
    else:
        ticket = lottery(mlp_maps(run.initial)[0], token_maps, p)
        notes.append(f"{ticket['kept']:.0%} of the neurons end with the frequency that was already their strongest "
                     "at initialisation.")
        figures.append(lottery_figure(ticket, p))
    return Tab("Mechanism", figures, notes)


def lottery_figure(ticket: dict, p: int) -> go.Figure:
    k = (p - 1) // 2
    counts = np.zeros((k, k), dtype=np.int32)
    np.add.at(counts, (ticket["final_freq"].numpy() - 1, ticket["init_freq"].numpy() - 1), 1)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("neurons per (initial, final) frequency",
                                                        "rank of the final frequency in the initial spectrum"))
    fig.add_trace(go.Heatmap(z=counts, x=np.arange(1, k + 1), y=np.arange(1, k + 1), colorscale="Blues",
                             hovertemplate="initial k=%{x}, final k=%{y}: %{z} neurons<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Histogram(x=arr(ticket["init_rank"], np.int32), showlegend=False), row=1, col=2)
    fig.update_xaxes(title="strongest frequency at initialisation", row=1, col=1)
    fig.update_yaxes(title="frequency at the end", row=1, col=1)
    fig.update_xaxes(title="rank (1: strongest)", row=1, col=2)
    return layout(fig, "The lottery ticket (He et al. 2025): the diagonal holds the neurons that kept their frequency", 420)
