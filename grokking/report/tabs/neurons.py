"""Tab 6, Neurons: the first neurons' activations over (a, b) and their 2-D Fourier transforms,
each neuron's best frequency and the share of its variance it explains, the neurons clustered by
frequency, and the readout in the Fourier basis (Nanda et al. 2023; seed 004)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from grokking.inspect.neurons import (activation_grid, fourier_2d, frequency_clusters, neuron_activations,
                                      neuron_frequencies, neuron_to_logit, readout_fourier)
from grokking.metrics import fourier_problem
from grokking.report.tabs import Tab
from grokking.report.tabs.common import arr, frequency_names, heatmap, layout, pairs_problem

SHOWN = 8  # neurons drawn one by one


@torch.no_grad()
def build(run) -> Tab:
    why = fourier_problem(run.model, run.data) or pairs_problem(run.data)
    if why:
        return Tab("Neurons", absent=f"the neuron views read activations over (a, b) in Z_p; {why}")
    p, inputs = run.p, run.data.inputs
    acts = neuron_activations(run.model, inputs)
    grids = activation_grid(acts, inputs, p)[:SHOWN]
    freqs = neuron_frequencies(acts, inputs, p)
    clusters = frequency_clusters(freqs["freq"], freqs["share"])
    tuned = sum(len(v) for k, v in clusters.items() if k is not None)
    notes = [f"{tuned} of {acts.shape[1]} neurons have one frequency explaining at least 85 % of their variance; "
             "clusters: " + ", ".join(f"k={k}: {len(v)}" for k, v in clusters.items() if k is not None)[:400] + "."]
    figures = [grid_figure(grids, "Activations of the first neurons over (a, b)", "Viridis", None),
               grid_figure(fourier_2d(grids.double(), p), "Their 2-D Fourier transforms (rows: a's basis, columns: b's)",
                           "RdBu", 0.0, frequency_names(p)),
               frequency_figure(freqs), cluster_figure(clusters)]
    readout = neuron_to_logit(run.model)
    if readout is None:
        notes.append("no readout in the Fourier basis: the neurons do not reach the logits linearly in this model.")
    else:
        figures.append(readout_figure(readout_fourier(readout, p), p))
    return Tab("Neurons", figures, notes)


def grid_figure(grids: torch.Tensor, title: str, colorscale: str, zmid, names=None) -> go.Figure:
    cols = min(4, len(grids))
    rows = -(-len(grids) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[f"neuron {j}" for j in range(len(grids))],
                        horizontal_spacing=0.03, vertical_spacing=0.08)
    for j, grid in enumerate(grids):
        fig.add_trace(heatmap(grid, colorscale=colorscale, zmid=zmid, showscale=False, x=names, y=names),
                      row=j // cols + 1, col=j % cols + 1)
    fig.update_yaxes(autorange="reversed")
    if names is None:
        fig.update_xaxes(title="b")
        fig.update_yaxes(title="a")
    return layout(fig, title, 300 * rows + 60)


def frequency_figure(freqs: dict) -> go.Figure:
    order = torch.argsort(freqs["freq"], stable=True)
    shares = freqs["shares"][order].T  # (K, units) sorted by frequency
    fig = make_subplots(rows=1, cols=2, column_widths=[0.65, 0.35],
                        subplot_titles=("share of each neuron's variance per frequency (neurons sorted by best k)",
                                        "best frequency's share, neurons sorted"))
    fig.add_trace(heatmap(shares, colorscale="Blues", zmid=None, zmin=0, zmax=1, y=np.arange(1, shares.shape[0] + 1),
                          hovertemplate="neuron %{customdata}<br>k=%{y}: %{z:.2f}<extra></extra>",
                          customdata=np.broadcast_to(arr(order, np.int32), shares.shape)), row=1, col=1)
    fig.add_trace(go.Scatter(y=arr(freqs["share"].sort().values), mode="lines", showlegend=False), row=1, col=2)
    fig.update_yaxes(title="frequency k", row=1, col=1)
    fig.update_xaxes(title="neuron", row=1, col=1)
    fig.update_yaxes(range=[0, 1], row=1, col=2)
    return layout(fig, "Each neuron's frequency (Nanda et al.'s fraction explained by one frequency)", 420)


def cluster_figure(clusters: dict) -> go.Figure:
    labels = [f"k={k}" if k is not None else "no single k" for k in clusters]
    fig = go.Figure(go.Bar(x=labels, y=[len(v) for v in clusters.values()],
                           hovertext=[", ".join(map(str, v[:40])) + (" ..." if len(v) > 40 else "") for v in clusters.values()]))
    fig.update_yaxes(title="neurons")
    return layout(fig, "Neurons clustered by frequency (85 % of their variance in one k; hover: neuron ids)", 330)


def readout_figure(readout: dict, p: int) -> go.Figure:
    fig = go.Figure(go.Bar(x=frequency_names(p), y=arr(readout["component_norms"])))
    fig.update_yaxes(title="norm over neurons")
    return layout(fig, "The readout (neurons to logits) in the Fourier basis over the answers", 330)
