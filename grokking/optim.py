"""Optimizers (with ⊥Grad where asked), the learning-rate warmup, and the Grokfast gradient filters."""
from __future__ import annotations

from collections import deque

import torch

from grokking.errors import ConfigError

# ⊥Grad's guard against dividing by zero, in both of its denominators (Prieto et al.'s orthograd.py)
ORTHOGONAL_EPS = 1e-30


def build_optimizer(cfg, params) -> torch.optim.Optimizer:
    """The torch optimizer of ``cfg``; with ``cfg.orthogonal`` each step first applies ⊥Grad
    (``orthogonalize_``) to the gradients it is about to use, after any Grokfast filter."""
    name, lr, wd, params = cfg.name, cfg.lr, cfg.weight_decay, list(params)
    if name in ("adamw", "adam"):
        kind = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
        optimizer = kind(params, lr=lr, weight_decay=wd, betas=tuple(cfg.betas), eps=cfg.eps)
    elif name == "sgd":
        optimizer = torch.optim.SGD(params, lr=lr, weight_decay=wd, momentum=cfg.momentum, nesterov=cfg.nesterov)
    else:
        raise ConfigError(f"unknown optimizer '{name}'; allowed: adamw, adam, sgd")
    if cfg.orthogonal:
        optimizer.register_step_pre_hook(lambda opt, args, kwargs: orthogonalize_(params))
    return optimizer


@torch.no_grad()
def orthogonalize_(params) -> None:
    """⊥Grad (Prieto, Barsbey, Mediano & Birdal 2025, "Grokking at the Edge of Numerical
    Stability"; their code: orthograd.py ``OrthoGrad._orthogonalize_gradients``), in
    place, tensor by tensor: the gradient g of a parameter θ loses its component along θ,

        g⊥ = g - (θ·g) / (θ·θ + ε) θ,

    and is rescaled to g's norm, g ← g⊥ ‖g‖ / (‖g⊥‖ + ε), with ε = ORTHOGONAL_EPS. The step can
    then no longer just scale the weights up (the "naïve loss minimisation" direction that the
    paper finds drives softmax collapse); weight decay still acts on θ itself."""
    for param in params:
        if param.grad is None:
            continue
        w, g = param.reshape(-1), param.grad.reshape(-1)
        g_orth = g - torch.dot(w, g) / (torch.dot(w, w) + ORTHOGONAL_EPS) * w
        g_orth.mul_(torch.linalg.vector_norm(g) / (torch.linalg.vector_norm(g_orth) + ORTHOGONAL_EPS))
        param.grad.copy_(g_orth.view_as(param.grad))


def set_warmup_lr(optimizer, cfg: dict, step: int) -> None:
    """Linear warmup: the learning rate of step ``step`` (0-based) is a pure function of the step,
    so resuming needs no scheduler state. ``cfg`` is the optimizer config as a plain dict."""
    if cfg["warmup_steps"] > 0 and step <= cfg["warmup_steps"]:
        scale = min(1.0, (step + 1) / cfg["warmup_steps"])
        for group in optimizer.param_groups:
            group["lr"] = cfg["lr"] * scale


class GradFilter:
    """Grokfast (Lee et al. 2024, "Grokfast: Accelerated grokking by amplifying slow gradients").

    Adds ``lamb`` times a low-pass filtered gradient to each raw gradient before the optimizer
    step: an exponential moving average (``ema``) or the mean of the last ``window`` gradients
    (``ma``). ``state_dict``/``load_state_dict`` make a resumed run continue exactly.
    """

    def __init__(self, cfg, params):
        if cfg.name not in ("ema", "ma"):
            raise ConfigError(f"unknown grokfast '{cfg.name}'; allowed: none, ema, ma")
        self.cfg, self.params = cfg, [p for p in params if p.requires_grad]
        self.avg = None  # ema: list of running means
        self.history = deque(maxlen=cfg.window) if cfg.name == "ma" else None

    @torch.no_grad()
    def apply(self) -> None:
        grads = [p.grad for p in self.params]
        if self.cfg.name == "ema":
            if self.avg is None:
                self.avg = [g.clone() for g in grads]
            else:
                torch._foreach_lerp_(self.avg, grads, 1 - self.cfg.alpha)
            torch._foreach_add_(grads, self.avg, alpha=self.cfg.lamb)
        else:
            self.history.append([g.clone() for g in grads])
            if len(self.history) == self.history.maxlen:
                for i, g in enumerate(grads):
                    g.add_(torch.stack([h[i] for h in self.history]).mean(dim=0), alpha=self.cfg.lamb)

    def state_dict(self) -> dict:
        return {"avg": self.avg, "history": list(self.history) if self.history is not None else None}

    def load_state_dict(self, state: dict) -> None:
        """Checkpoints load onto the CPU: each saved tensor goes to the device of its parameter."""
        self.avg = None if state["avg"] is None else self.on_param_devices(state["avg"])
        if self.history is not None:
            self.history.clear()
            self.history.extend(self.on_param_devices(grads) for grads in state["history"])

    def on_param_devices(self, tensors: list[torch.Tensor]) -> list[torch.Tensor]:
        return [t.to(p.device) for t, p in zip(tensors, self.params, strict=True)]


def build_grad_filter(cfg, params) -> GradFilter | None:
    return None if cfg.name == "none" else GradFilter(cfg, params)
