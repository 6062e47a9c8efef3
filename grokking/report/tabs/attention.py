"""Tab 5, Attention (transformers): the average pattern per head from "=" to each position, and
per head the p x p map of the attention from "=" to a over all (a, b) (Nanda et al. 2023)."""
from __future__ import annotations

import torch
from plotly.subplots import make_subplots

from grokking.inspect.attention import attention_map, attention_patterns, mean_pattern
from grokking.models import Transformer
from grokking.report.tabs import Tab
from grokking.report.tabs.common import heatmap, layout, pairs_problem


def build(run) -> Tab:
    if not isinstance(run.model, Transformer):
        return Tab("Attention", absent="the model is an MLP: it has no attention")
    with torch.no_grad():
        pattern = attention_patterns(run.model, run.data.inputs)[0]
    positions = list(run.model.sequence)
    heads = pattern.shape[1]
    mean = make_subplots(rows=1, cols=1)
    mean.add_trace(heatmap(mean_pattern(pattern), colorscale="Blues", zmid=None, x=positions,
                           y=[f"head {h}" for h in range(heads)], zmin=0, zmax=1,
                           hovertemplate="%{y} -> %{x}: %{z:.3f}<extra></extra>"))
    mean.update_xaxes(title="attended position")
    figures = [layout(mean, f'Average attention from "=" to each position (first block, step {run.last.step})', 300)]
    if run.data.n_values and positions[0] == "a" and not pairs_problem(run.data):
        grids = attention_map(pattern, run.data.inputs, run.data.n_values, position=0)
        maps = make_subplots(rows=1, cols=heads, subplot_titles=[f"head {h}" for h in range(heads)],
                             horizontal_spacing=0.03)
        for h in range(heads):
            maps.add_trace(heatmap(grids[h], colorscale="Blues", zmid=None, zmin=0, zmax=1, showscale=h == heads - 1,
                                   hovertemplate="a=%{y}, b=%{x}: %{z:.3f}<extra></extra>"), row=1, col=h + 1)
        maps.update_xaxes(title="b")
        maps.update_yaxes(title="a", autorange="reversed")
        figures.append(layout(maps, 'Attention from "=" to a over all (a, b), per head (stripes: the head\'s frequency)', 380))
    return Tab("Attention", figures)
