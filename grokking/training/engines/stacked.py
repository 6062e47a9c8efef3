"""Forward passes of a whole pack at once, over parameters stacked along a leading member dimension.

Every stacked tensor has the shape ``(members, *solo_shape)`` and inputs come as ``(members, rows,
n_operands)``. Two forwards:

- ``OnehotMLP``: the MLP with one-hot tokens (the default model). Its first layer reads the one-hot
  rows as one batched matrix product instead of a gather per member: the gather's backward is a
  scatter-add, slow on CPU, while the matrix product's backward is another matrix product, and the
  products are exact (each output is the sum of one weight per operand, as in the solo gather).
  Where the members share their rows (same split and op) one one-hot matrix serves every member.
- ``Generic``: any other model through ``torch.func.vmap`` over ``functional_call`` of one solo
  module, with the member's parameters swapped in.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.func import functional_call, vmap

from grokking.models import MLP

# Above this many one-hot columns (n_operands * n_values) the one-hot product costs more than the
# gather it replaces; the first layer then gathers (see docs/packing_speed.md).
MAX_ONEHOT_COLUMNS = 256


def stack_parameters(models: list[nn.Module]) -> dict[str, torch.Tensor]:
    """name -> (members, *shape) leaf tensor that requires grad, in ``named_parameters`` order."""
    names = [name for name, _ in models[0].named_parameters()]
    return {name: torch.stack([dict(m.named_parameters())[name].detach() for m in models]).requires_grad_()
            for name in names}


class OnehotMLP:
    """Batched forward of ``grokking.models.MLP`` with ``embedding=onehot``."""

    def __init__(self, template: MLP):
        self.act, self.n_values, self.n_operands = template.act, template.n_values, template.n_operands
        self.depth = len(template.hidden)
        self.columns = self.n_values * self.n_operands
        self.matmul = self.columns <= MAX_ONEHOT_COLUMNS

    def encode(self, x: torch.Tensor, shared: bool) -> torch.Tensor | None:
        """(M, B, n_operands) token ids -> (M, B, columns) one-hot rows (operand blocks side by
        side), one copy expanded over the members when they share their rows; None to gather."""
        if not self.matmul:
            return None
        if shared:
            return self.encode(x[:1], False).expand(len(x), -1, -1)
        shifted = x + self.n_values * torch.arange(self.n_operands, device=x.device)
        out = torch.zeros(*x.shape[:2], self.columns, device=x.device)
        return out.scatter_(2, shifted, 1.0)

    def first_layer(self, params: dict, x: torch.Tensor, onehot: torch.Tensor | None) -> torch.Tensor:
        weight = params["token_weight"]  # (M, columns, width)
        if onehot is not None:
            h = torch.bmm(onehot, weight)
        else:
            flat = weight.flatten(0, 1)  # the members' tables one after another
            base = (torch.arange(len(weight), device=x.device) * self.columns)[:, None]
            h = F.embedding(x[..., 0] + base, flat)
            for i in range(1, self.n_operands):
                h = h + F.embedding(x[..., i] + i * self.n_values + base, flat)
        bias = params.get("token_bias")
        return h if bias is None else h + bias[:, None]

    def __call__(self, params: dict, x: torch.Tensor, onehot: torch.Tensor | None = None, features: bool = False):
        """Logits (M, B, classes) and, with ``features``, the solo model's features per member."""
        h = self.first_layer(params, x, onehot)
        feats = {"layer1": h}
        h = self.act(h)
        for i in range(self.depth):
            h = linear(h, params[f"hidden.{i}.weight"], params.get(f"hidden.{i}.bias"))
            feats[f"layer{i + 2}"] = h
            h = self.act(h)
        logits = linear(h, params["readout.weight"], params.get("readout.bias"))
        return (logits, feats) if features else logits


def linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """nn.Linear per member: h (M, B, in), weight (M, out, in), bias (M, out)."""
    out = torch.bmm(h, weight.transpose(1, 2))
    return out if bias is None else out + bias[:, None]


class Generic:
    """Batched forward of any model: its solo forward under ``vmap``, one member's parameters each."""

    def __init__(self, template: nn.Module):
        self.template = template

    def encode(self, x: torch.Tensor, shared: bool) -> None:
        return None

    def __call__(self, params: dict, x: torch.Tensor, encoded=None, features: bool = False):
        def one(member_params, member_x):
            return functional_call(self.template, member_params, (member_x,), {"features": features})

        # the math kernel of attention decomposes into batched products; the fused CPU kernel
        # has no vmap rule and would run member by member
        with sdpa_kernel(SDPBackend.MATH):
            return vmap(one)(params, x)


def batched_forward(template: nn.Module):
    """The fastest batched forward for this solo module."""
    if isinstance(template, MLP) and template.embedding == "onehot":
        return OnehotMLP(template)
    return Generic(template)
