"""Forward passes of a whole pack at once, over parameters stacked along a leading member dimension.

Every stacked tensor has the shape ``(members, *solo_shape)`` and inputs come as ``(members, rows,
n_operands)``. Two forwards:

- ``OnehotMLP``: the MLP with one-hot tokens (the default model). Its first layer gathers every
  member's rows in one call (``MemberGather``), then the layers are batched matrix products.
- ``Generic``: any other model through ``torch.func.vmap`` over ``functional_call`` of one solo
  module, with the member's parameters swapped in.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.func import functional_call, vmap

from grokking.models import ACTIVATIONS, MLP

def stack_parameters(models: list[nn.Module]) -> dict[str, torch.Tensor]:
    """name -> (members, *shape) leaf tensor that requires grad, in ``named_parameters`` order."""
    names = [name for name, _ in models[0].named_parameters()]
    return {name: torch.stack([dict(m.named_parameters())[name].detach() for m in models]).requires_grad_()
            for name in names}


class MemberGather(torch.autograd.Function):
    """Each member's first layer for one-hot tokens: row ``rows[m, b, k]`` of member m's table
    summed over the operands k, for every member at once.

    Forward: one ``embedding_bag`` (sum) over the members' tables laid end to end, the rows
    shifted into their member's table; the sum per example is the solo run's ``W[a] + W[b]``,
    bit for bit. Backward: ``gather_grad``. On a CPU both are passes over memory, where the
    one-hot product they replace is a (rows x columns x width) matrix product forward and another
    backward (docs/packing_speed.md)."""

    @staticmethod
    def forward(table: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        members, columns, width = table.shape
        out = F.embedding_bag(flat_rows(rows, columns).flatten(0, 1), table.reshape(-1, width), mode="sum")
        return out.view(*rows.shape[:2], width)

    @staticmethod
    def setup_context(ctx, inputs, output):
        table, rows = inputs
        ctx.columns = table.shape[1]
        ctx.save_for_backward(rows)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (rows,) = ctx.saved_tensors
        backward = onehot_product_grad if grad.is_cuda else scatter_grad
        return backward(grad, rows, ctx.columns), None


def flat_rows(rows: torch.Tensor, columns: int) -> torch.Tensor:
    """(M, B, operands) rows of each member's table -> rows of the members' tables end to end."""
    return rows + columns * torch.arange(len(rows), device=rows.device).view(-1, 1, 1)


def scatter_grad(grad: torch.Tensor, rows: torch.Tensor, columns: int) -> torch.Tensor:
    """The gather's gradient, (M, columns, width), as one ``index_add_`` per operand (in order,
    so deterministic on a CPU)."""
    members, width = len(grad), grad.shape[-1]
    flat, grads = flat_rows(rows, columns).flatten(0, 1), grad.reshape(-1, width)
    table_grad = grad.new_zeros(members * columns, width)
    for k in range(flat.shape[-1]):
        table_grad.index_add_(0, flat[:, k], grads)
    return table_grad.view(members, columns, width)


def onehot_product_grad(grad: torch.Tensor, rows: torch.Tensor, columns: int) -> torch.Tensor:
    """The same gradient as the product of the one-hot rows with ``grad``: on a GPU a scatter-add
    would add with atomics (in no fixed order: not deterministic) and the product is fast."""
    onehot = grad.new_zeros(*rows.shape[:2], columns).scatter_(2, rows, 1.0)
    return torch.bmm(onehot.transpose(1, 2), grad)


class MemberLinear(torch.autograd.Function):
    """``nn.Linear`` without bias per member: (M, B, in) inputs, (M, out, in) weights, (M, B, out)
    outputs; with ``square``, of the squared inputs (the quadratic activation folded in).

    The products run in the orientation this CPU runs fastest for the thin layers of these
    models (``out`` is the number of classes): the forward as ``weight @ inputs.T`` (its result
    is returned as a transposed view), the backward as ``grad @ weight`` and ``grad.T @ inputs``.
    With ``square`` the backward multiplies by 2 on the small ``grad`` (exact) and then by the
    inputs in place: one pass over the activations where autograd's square takes three."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, weight: torch.Tensor, square: bool) -> torch.Tensor:
        a = h * h if square else h
        ctx.square = square
        ctx.save_for_backward(h, weight, a)  # the squares too: recomputing them costs a pass
        return torch.bmm(weight, a.transpose(1, 2)).transpose(1, 2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        h, weight, a = ctx.saved_tensors
        weight_grad = torch.bmm(grad.transpose(1, 2), a)
        if not ctx.square:
            return torch.bmm(grad, weight), weight_grad, None
        return torch.bmm(grad * 2.0, weight).mul_(h), weight_grad, None


class OnehotMLP:
    """Batched forward of ``grokking.models.MLP`` with ``embedding=onehot``."""

    def __init__(self, template: MLP):
        self.act, self.n_values, self.n_operands = template.act, template.n_values, template.n_operands
        self.depth = len(template.hidden)
        self.square = template.act is ACTIVATIONS["quad"]  # folded into the next layer (MemberLinear)

    def first_layer(self, params: dict, x: torch.Tensor) -> torch.Tensor:
        """(M, B, width) pre-activations of (M, B, n_operands) token ids."""
        rows = x + self.n_values * torch.arange(self.n_operands, device=x.device)  # each operand's block
        h = MemberGather.apply(params["token_weight"], rows)
        bias = params.get("token_bias")
        return h if bias is None else h + bias[:, None]

    def __call__(self, params: dict, x: torch.Tensor, features: bool = False):
        """Logits (M, B, classes) and, with ``features``, the solo model's features per member."""
        h = self.first_layer(params, x)
        feats = {"layer1": h}
        for i in range(self.depth):
            h = self.linear(h, params[f"hidden.{i}.weight"], params.get(f"hidden.{i}.bias"))
            feats[f"layer{i + 2}"] = h
        logits = self.linear(h, params["readout.weight"], params.get("readout.bias"))
        return (logits, feats) if features else logits

    def linear(self, h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """The activation of ``h``, then nn.Linear per member: weight (M, out, in), bias (M, out)."""
        out = MemberLinear.apply(h, weight, True) if self.square else MemberLinear.apply(self.act(h), weight, False)
        return out if bias is None else out + bias[:, None]


class Generic:
    """Batched forward of any model: its solo forward under ``vmap``, one member's parameters each."""

    def __init__(self, template: nn.Module):
        self.template = template

    def __call__(self, params: dict, x: torch.Tensor, features: bool = False):
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
