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


def l2_norms(named: list[tuple[str, torch.Tensor]], total: str) -> dict:
    """``total`` over all tensors and ``total/<group>`` per group (one norm kernel per tensor,
    one device sync; the groups are combined in float64 on the host)."""
    norms = torch.stack([torch.linalg.vector_norm(t) for _, t in named]).tolist() if named else []
    return l2_from_norms([name for name, _ in named], norms, total)


def l2_from_norms(names: list[str], norms: list[float], total: str) -> dict:
    """``total`` and ``total/<group>`` from each named tensor's own L2 norm."""
    squares: dict[str, float] = {}
    for name, norm in zip(names, norms):
        squares[group_of(name)] = squares.get(group_of(name), 0.0) + norm**2
    groups = {f"{total}/{group}": math.sqrt(value) for group, value in squares.items()}
    return {total: math.sqrt(sum(squares.values())), **groups} if names else {}


def weight_norms(model: nn.Module) -> dict:
    """weight_norm over all parameters and norm/<group> per group."""
    out = l2_norms([(n, p.detach()) for n, p in model.named_parameters()], "weight_norm")
    return {k.replace("weight_norm/", "norm/"): v for k, v in out.items()}


def grad_norms(model: nn.Module) -> dict:
    """grad_norm and grad_norm/<group> of the gradients the last backward pass left (before any
    Grokfast filter), as He et al. (2025, seed 003) track them through grokking."""
    return l2_norms([(n, p.grad.detach()) for n, p in model.named_parameters() if p.grad is not None], "grad_norm")
