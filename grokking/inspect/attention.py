"""Attention of a transformer over the whole table (Nanda et al. 2023, figure 4 and appendix: the
average pattern per head from "=" to each position, and per head the attention from "=" to a as a
p x p map over (a, b), whose stripes show the head's frequency)."""
from __future__ import annotations

import math

import torch

from grokking.models import Transformer


def attention_pattern(queries: torch.Tensor, keys: torch.Tensor, heads: int, causal: bool) -> torch.Tensor:
    """(N, heads, T, T) softmax(q k^T / sqrt(d_head)) of fused (N, T, width) queries and keys,
    split into heads as the model splits them; ``causal`` masks later positions."""
    n, t, width = queries.shape
    split = lambda x: x.view(n, t, heads, width // heads).transpose(1, 2)  # noqa: E731
    scores = split(queries) @ split(keys).transpose(-1, -2) / math.sqrt(width // heads)
    if causal:
        scores = scores.masked_fill(torch.ones(t, t, dtype=torch.bool, device=scores.device).triu(1), -math.inf)
    return scores.softmax(dim=-1)


@torch.no_grad()
def attention_patterns(model: Transformer, inputs: torch.Tensor) -> list[torch.Tensor]:
    """Per block, the (N, heads, T, T) attention pattern of the (N, 2) operand pairs."""
    h = model.embed(model.tokens(inputs)) + model.pos
    patterns = []
    for i, block in enumerate(model.blocks):
        x = h if block.norm != "pre" else block.ln1(h)
        patterns.append(attention_pattern(block.attn.q(x), block.attn.k(x), block.attn.heads, block.attn.causal))
        if i + 1 < len(model.blocks):
            h, _ = block(h)
    return patterns


def mean_pattern(pattern: torch.Tensor) -> torch.Tensor:
    """(heads, T): the attention from the last position ("=") to each position, averaged over
    the inputs."""
    return pattern[:, :, -1, :].mean(dim=0)


def attention_map(pattern: torch.Tensor, inputs: torch.Tensor, p: int, position: int = 0) -> torch.Tensor:
    """(heads, p, p): per head, the attention from the last position to ``position`` (0: the
    token a) at each (a, b)."""
    grid = pattern.new_zeros(pattern.shape[1], p, p)
    grid[:, inputs[:, 0], inputs[:, 1]] = pattern[:, :, -1, position].T
    return grid
