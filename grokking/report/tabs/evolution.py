"""Tab 3, Evolution: a slider over the snapshots for the spectrum, the embedding circle and the
neurons' frequencies; the Fourier IPR, feature rank, weight norm and gradient norm over training."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from grokking.inspect.fourier import circle, spectrum
from grokking.inspect.mechanism import dominant_frequencies, neuron_ipr
from grokking.report.tabs import Tab
from grokking.report.tabs.common import arr, draw_marks, layout, series

PANELS = (("Fourier IPR", ("fourier_ipr",)), ("feature rank", ("feature_rank",)), ("weight norm", ("weight_norm",)),
          ("gradient norm", ("grad_norm",)))


def build(run) -> Tab:
    figures = [line_panels(run)]
    notes = []
    if "embedding" in run.last.stats:
        figures.insert(0, slider_figure(run))
    else:
        notes.append("no slider over the spectrum and circle: the Fourier views do not apply to this run.")
    if not any(s for s in figures[-1].data):
        notes.append("no metrics were logged and none could be computed.")
    return Tab("Evolution", figures, notes)


def keys_like(records: list[dict], names: tuple) -> list[str]:
    """The numeric keys of ``records`` that are one of ``names`` or ``<name>/<part>``."""
    present = {k for r in records for k, v in r.items() if isinstance(v, (int, float))}
    return sorted(k for k in present if any(k == n or k.startswith(n + "/") for n in names))


def line_panels(run) -> go.Figure:
    """One panel per quantity, from metrics.jsonl, else from the snapshots' evaluations."""
    history, snaps = run.history, [s.stats for s in run.snapshots]
    panels = []
    for title, prefixes in PANELS:
        source = history if keys_like(history, prefixes) else snaps
        keys = keys_like(source, prefixes)
        if keys:
            panels.append((title, source, keys))
    fig = make_subplots(rows=1, cols=max(1, len(panels)), subplot_titles=[t for t, _, _ in panels] or ["(none)"])
    for col, (title, source, keys) in enumerate(panels, start=1):
        for key in keys:
            steps, values = series(source, key, positive_steps=False)
            fig.add_trace(go.Scatter(x=steps, y=values, name=key, mode="lines+markers", marker={"size": 4}),
                          row=1, col=col)
    fig.update_xaxes(title="step")
    draw_marks(fig, run, annotate=False)
    return layout(fig, "Over training (dotted: memorised, dashed: grokked)", 380)


def slider_figure(run) -> go.Figure:
    """Per snapshot three traces (spectrum bars, circle, neuron frequencies), one snapshot visible
    at a time; the slider switches which."""
    p = run.p
    snaps = run.snapshots
    final_freq = dominant_frequencies([torch.from_numpy(m) for m in run.last.stats["token_maps"]], p)
    order = torch.argsort(final_freq, stable=True)
    fig = make_subplots(rows=1, cols=3, subplot_titles=("spectrum of the embedding", "circle of the strongest frequency",
                                                        "each neuron's strongest frequency (colour: its IPR)"))
    for i, snap in enumerate(snaps):
        emb = torch.from_numpy(snap.stats["embedding"])
        spec = spectrum(emb, p)
        ring = circle(emb, p, spec["ranked"][0])
        maps = [torch.from_numpy(m) for m in snap.stats["token_maps"]]
        freq, ipr = dominant_frequencies(maps, p)[order], neuron_ipr(maps, p)[order]
        visible = i == len(snaps) - 1
        xy = arr(ring["points"])
        fig.add_trace(go.Bar(x=np.arange(1, len(spec["share"]) + 1), y=arr(spec["share"]), visible=visible,
                             showlegend=False, marker_color="#1f77b4"), row=1, col=1)
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", visible=visible, showlegend=False,
                                 marker={"color": np.arange(p), "colorscale": "HSV", "size": 6},
                                 text=[f"token {a}, k={ring['k']}, roundness {ring['roundness']:.2f}" for a in range(p)],
                                 hoverinfo="text"), row=1, col=2)
        fig.add_trace(go.Scatter(x=np.arange(len(freq)), y=arr(freq, np.int16), mode="markers", visible=visible,
                                 showlegend=False, marker={"color": arr(ipr), "cmin": 0, "cmax": 1, "size": 4,
                                                           "colorscale": "Viridis"}), row=1, col=3)
    steps = []
    for i, snap in enumerate(snaps):
        shown = [j // 3 == i for j in range(3 * len(snaps))]
        label = f"{snap.step}{' (init)' if snap.rebuilt else ''}"
        steps.append({"method": "update", "label": label, "args": [{"visible": shown}, {}]})
    fig.update_layout(sliders=[{"active": len(snaps) - 1, "steps": steps, "currentvalue": {"prefix": "step "},
                                "pad": {"t": 40}}])
    fig.update_xaxes(title="frequency k", row=1, col=1)
    fig.update_yaxes(title="share of power", range=[0, 1], row=1, col=1)
    fig.update_xaxes(title="neuron (sorted by its final frequency)", row=1, col=3)
    fig.update_yaxes(title="frequency k", row=1, col=3)
    return layout(fig, "Snapshots: drag the slider (step 0 is rebuilt from the seed)", 470)
