"""Softmax collapse and naïve loss minimisation (Prieto, Barsbey, Mediano & Birdal 2025, "Grokking
at the Edge of Numerical Stability").

Once a network fits its training set, cross-entropy keeps falling as the logits grow; for a
network without biases the direction that scales the logits is the weights themselves, and the
gradient aligns with it ("naïve loss minimisation", NLM). The logits grow until an example's
softmax rounds to exactly one-hot in floating point (softmax collapse, SC): its loss is exactly 0
and it no longer contributes the gradient on its correct logit. The paper's code logs the share
of training examples with a zero loss term (logger.py ``compute_zero_terms``) and of those whose
shifted exponentials sum to exactly 1 (``compute_softmax_collapse``); the two agree on correctly
classified examples.

``loss`` below is the run's per-example loss, ``loss(logits, labels) -> (rows,)``, computed as
training computes it (grokking.training.loss: ``loss`` in ``loss_dtype``).
"""
from __future__ import annotations

import torch


def softmax_collapse(losses: torch.Tensor, logits: torch.Tensor) -> dict:
    """``collapse/fraction``: the share of examples whose loss ``losses`` is exactly 0, i.e. whose
    correct class's probability rounds to 1; ``collapse/logit_norm``: the mean L2 norm of their
    ``logits``."""
    zero = (losses == 0).double().mean()
    norm = torch.linalg.vector_norm(logits.double(), dim=-1).mean()
    fraction, logit_norm = torch.stack([zero, norm]).tolist()
    return {"collapse/fraction": fraction, "collapse/logit_norm": logit_norm}


def nlm_cosine(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, loss, rows_per_pass: int) -> float | None:
    """cos(-∇L, θ) over all parameters: the cosine between the training loss's descent direction
    and the weights, which nears 1 when the step would only scale the weights up (the NLM
    direction of a network without biases). L is the summed ``loss`` of ``inputs`` (all training
    examples, ``rows_per_pass`` at a time, gradients summed: the direction of the mean loss);
    ``.grad`` is left untouched. None when the gradient or the weights are zero."""
    params = [p for p in model.parameters() if p.requires_grad]
    grads = [torch.zeros_like(p) for p in params]
    with torch.enable_grad():
        for x, y in zip(inputs.split(rows_per_pass), labels.split(rows_per_pass)):
            torch._foreach_add_(grads, torch.autograd.grad(loss(model(x), y).sum(), params))
    sums = torch.stack([torch.stack([(g.double() * p.double()).sum(), g.double().square().sum(), p.double().square().sum()])
                        for g, p in zip(grads, params)]).sum(dim=0)
    dot, grad_sq, weight_sq = sums.tolist()
    if grad_sq == 0 or weight_sq == 0:
        return None
    return -dot / (grad_sq * weight_sq) ** 0.5
