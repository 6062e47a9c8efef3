"""The training loss of one example: cross-entropy, StableMax cross-entropy (Prieto et al. 2025), or
MSE on one-hot targets (Omnigrok)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from grokking.errors import ConfigError


def run_loss(cfg):
    """The per-example loss of ``cfg``'s run as a function of (logits, labels), for its metrics."""
    kind, dtype = str(cfg.loss), str(cfg.loss_dtype)
    return lambda logits, labels: per_example_loss(logits, labels, kind, dtype)


def per_example_loss(logits, labels, kind: str, dtype: str) -> torch.Tensor:
    """(rows,) losses, computed in ``dtype`` (``loss_dtype``; the model itself stays float32).
    StableMax is computed in float64 whatever ``dtype`` says, as its authors do."""
    if kind == "stablemax":
        return stablemax_cross_entropy(logits, labels)
    logits = logits.to(getattr(torch, dtype))
    if kind == "ce":
        return F.cross_entropy(logits, labels, reduction="none")
    targets = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
    return (logits - targets).pow(2).mean(dim=-1)


def check_loss(kind: str, dtype: str) -> None:
    """StableMax is always float64: a half-precision ``loss_dtype`` would not be what it runs."""
    if kind == "stablemax" and dtype in ("float16", "bfloat16"):
        raise ConfigError(f"loss_dtype={dtype} does not apply to loss=stablemax, which is computed in float64 as "
                          "Prieto et al. do; allowed with stablemax: float32 (the default) or float64")


def stablemax_s(x: torch.Tensor) -> torch.Tensor:
    """StableMax's replacement for exp: s(x) = x + 1 for x >= 0 and 1 / (1 - x) for x < 0, which
    grows linearly, so that the probabilities of a confident network do not round to exactly 1.
    The negative branch reads min(x, 0), so neither branch is infinite and its masked-out
    gradient stays 0 (the authors add 1e-30 to 1 - x for the same reason at x = 1)."""
    return torch.where(x >= 0, x + 1, 1 / (1 - x.clamp(max=0)))


def stablemax_cross_entropy(logits, labels) -> torch.Tensor:
    """-log(s(z_y) / sum_j s(z_j)) per row, in float64 (Prieto, Barsbey, Mediano & Birdal 2025,
    "Grokking at the Edge of Numerical Stability", eq. of StableMax; their code:
    utils.py ``stablemax_cross_entropy``, which casts the logits to float64)."""
    s = stablemax_s(logits.to(torch.float64))
    return -(s.gather(-1, labels[:, None]).squeeze(-1) / s.sum(dim=-1)).log()
