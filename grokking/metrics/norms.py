"""Parameter norms: the total L2 norm sqrt(sum theta^2) that Omnigrok (Liu, Michaud & Tegmark 2022)
tracks through grokking, and the same norm per group of parameters."""
from __future__ import annotations

import math

import torch
from torch import nn


def group_of(name: str) -> str:
    """The group of a parameter: its path down to the first list index (``blocks.0``,
    ``hidden.1``), else its top-level module (``embed``, ``readout``); a parameter held by the
    model itself loses its ``_weight``/``_bias`` suffix (``token_weight`` -> ``token``)."""
    parts = name.split(".")
    if len(parts) > 2 and parts[1].isdigit():
        return ".".join(parts[:2])
    if len(parts) == 1:
        return parts[0].removesuffix("_weight").removesuffix("_bias")
    return parts[0]


def weight_norms(model: nn.Module) -> dict:
    """weight_norm over all parameters and norm/<group> per group."""
    return group_norms(((name, p.detach()) for name, p in model.named_parameters()), "weight_norm", "norm")


def grad_norms(model: nn.Module) -> dict:
    """grad_norm, the L2 norm over all parameters of the gradients in their ``.grad`` (those of the
    last backward(), after a Grokfast filter if one ran), and grad_norm/<group> per group;
    parameters without a gradient are left out, a model without any gives {}."""
    named = ((name, p.grad.detach()) for name, p in model.named_parameters() if p.grad is not None)
    return group_norms(named, "grad_norm", "grad_norm")


def group_norms(named, total_key: str, prefix: str) -> dict:
    """The L2 norm over all (name, tensor) pairs and per group (one norm kernel per tensor, one
    device sync; the groups are combined in float64 on the host)."""
    named = list(named)
    if not named:
        return {}
    norms = torch.stack([torch.linalg.vector_norm(t) for _, t in named]).tolist()
    squares: dict[str, float] = {}
    for (name, _), norm in zip(named, norms):
        squares[group_of(name)] = squares.get(group_of(name), 0.0) + norm**2
    groups = {f"{prefix}/{group}": math.sqrt(value) for group, value in squares.items()}
    return {total_key: math.sqrt(sum(squares.values())), **groups}
