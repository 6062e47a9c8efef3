"""Tab 2, Fourier: the embedding's spectrum and key frequencies, its circle for each key frequency,
its correlation with the Fourier basis, and the addition theorem beside the neurons computing it
(Nanda et al. 2023; the seed dashboard's Fourier and Fourier-theory tabs)."""
from __future__ import annotations

import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from grokking.inspect.fourier import addition_theorem, model_circles, model_principal_circle, model_spectrum, sum_share
from grokking.inspect.neurons import activation_grid, neuron_activations
from grokking.metrics import fourier_problem
from grokking.report.tabs import Tab
from grokking.report.tabs.common import arr, heatmap, layout

MAX_CIRCLES = 4
SHOWN_NEURONS = 3


def build(run) -> Tab:
    why = fourier_problem(run.model, run.data)
    if why:
        return Tab("Fourier", absent=f"the Fourier views {why}")
    p = run.p
    spec = model_spectrum(run.model, p)
    key = spec["key_freqs"] or spec["ranked"][:1]
    circles = model_circles(run.model, p, key[:MAX_CIRCLES])
    notes = ["key frequencies (share of the embedding's power >= 3/K): "
             + ", ".join(f"k={k} ({spec['share'][k - 1]:.1%})" for k in spec["key_freqs"]) if spec["key_freqs"]
             else "no key frequency: no frequency holds 3 times the uniform share of the power",
             f"the 3 strongest frequencies hold {spec['top_share']:.1%} of the power (random weights: about "
             f"{3 / len(spec['share']):.1%})."]
    principal = model_principal_circle(run.model, p)
    notes.append(f"on its two principal components the embedding holds {principal['explained']:.0%} of its variance "
                 f"and lies on a circle of frequency {principal['k']} with circularity {principal['circularity']:.2f} "
                 "(1: one circle; about 2 ln(K)/p for random weights).")
    figures = [spectrum_figure(spec, run.last.step), circle_figure(circles, principal, p), correlation_table(circles)]
    figures.append(theorem_figure(run, key[0]))
    return Tab("Fourier", figures, notes)


def spectrum_figure(spec: dict, step: int) -> go.Figure:
    ks = list(range(1, len(spec["share"]) + 1))
    colours = ["#d62728" if k in spec["key_freqs"] else "#1f77b4" for k in ks]
    fig = go.Figure(go.Bar(x=ks, y=arr(spec["share"]), marker_color=colours,
                           customdata=arr(spec["power"]), hovertemplate="k=%{x}<br>share %{y:.3f}<br>power %{customdata:.3g}"))
    fig.update_xaxes(title="frequency k")
    fig.update_yaxes(title="share of the embedding's power")
    return layout(fig, f"Fourier spectrum of the token embedding at step {step} (red: key frequencies)", 350)


def circle_figure(circles: list[dict], principal: dict, p: int) -> go.Figure:
    """The tokens in the plane of each key frequency, then on the two principal components."""
    titles = [f"k={c['k']}: roundness {c['roundness']:.2f}" for c in circles]
    titles.append(f"principal components: k={principal['k']}, circularity {principal['circularity']:.2f}")
    panels = [*circles, {**principal, "principal": True}]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=titles)
    for col, c in enumerate(panels, start=1):
        xy = arr(c["points"])
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers+text", text=[str(a) for a in range(p)],
                                 textposition="top center", textfont={"size": 8}, showlegend=False,
                                 marker={"color": list(range(p)), "colorscale": "HSV", "size": 7},
                                 hovertemplate="token %{text}<extra></extra>"), row=1, col=col)
        names = ("PC 1", "PC 2") if c.get("principal") else (f"cos {c['k']} direction", f"sin {c['k']} direction")
        fig.update_xaxes(title=names[0], row=1, col=col)
        fig.update_yaxes(title=names[1], scaleanchor=f"x{col if col > 1 else ''}", row=1, col=col)
    return layout(fig, "The tokens in the plane of each key frequency and on the principal components "
                       "(colour: token value; fitted directions flatter roundness: random weights score about d/(d+p))", 380)


def correlation_table(circles: list[dict]) -> go.Figure:
    rows = [[c["k"] for c in circles], [f"{c['cos_corr']:.3f}" for c in circles],
            [f"{c['sin_corr']:.3f}" for c in circles], [f"{c['roundness']:.3f}" for c in circles]]
    fig = go.Figure(go.Table(header={"values": ["frequency k", "cos correlation", "sin correlation", "roundness"]},
                             cells={"values": rows}))
    return layout(fig, "Correlation of the embedding with the Fourier basis", 80 + 30 * (len(circles) + 2))


@torch.no_grad()
def theorem_figure(run, k: int) -> go.Figure:
    """cos(wa)cos(wb) - sin(wa)sin(wb) = cos(w(a+b)) for frequency k, then the neurons whose
    activations over (a, b) lie most on cos/sin(w(a+b))."""
    p, grids = run.p, addition_theorem(run.p, k)
    acts = activation_grid(neuron_activations(run.model, run.data.inputs), run.data.inputs, p)
    shares = sum_share(acts, p, k)
    top = torch.argsort(shares, descending=True)[:SHOWN_NEURONS].tolist()
    titles = ["cos(wa) cos(wb)", "sin(wa) sin(wb)", "difference", "cos(w(a+b))"]
    titles += [f"neuron {j}: {shares[j]:.0%} on w(a+b)" for j in top]
    fig = make_subplots(rows=2, cols=4, subplot_titles=titles, horizontal_spacing=0.04, vertical_spacing=0.12)
    for i, name in enumerate(("cos_a_cos_b", "sin_a_sin_b", "difference", "cos_sum")):
        fig.add_trace(heatmap(grids[name], showscale=False), row=1, col=i + 1)
    for i, j in enumerate(top):
        fig.add_trace(heatmap(acts[j], zmid=None, colorscale="Viridis", showscale=False), row=2, col=i + 1)
    fig.update_xaxes(title="b")
    fig.update_yaxes(title="a", autorange="reversed")
    return layout(fig, f"Addition theorem for k={k} (top) and the neurons computing it (bottom, activation over a, b)", 620)
