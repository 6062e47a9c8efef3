"""AdamW, Adam, SGD (each with or without ⊥Grad) and the Grokfast filters over stacked parameters,
each member with its own hyperparameters.

The arithmetic follows torch.optim's single-tensor implementations step by step (per-member
scalars computed in Python doubles as torch does, then applied as float32 tensors broadcast over
each member's slice), except for Adam and AdamW on a CPU, which run torch's fused kernel for the
members that share their hyperparameters (``PackedOptimizer.fused_adam``). A member's state converts to and from the
solo ``state_dict`` formats (``torch.optim`` and ``grokking.optim.GradFilter``), so a member
leaves or joins a pack through the solo checkpoint.
"""
from __future__ import annotations

import torch

from grokking.errors import ConfigError
from grokking.optim import ORTHOGONAL_EPS

OPTIMIZERS = ("adamw", "adam", "sgd")
# torch's fused Adam(W) kernels run on a CPU from torch 2.4 on
FUSED_ADAM_ON_CPU = tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4)


def same_for_all(values: list, key: str):
    """The one value a pack must share; a clear error when its members differ."""
    if any(v != values[0] for v in values):
        raise ConfigError(f"{key} differs between the members of a pack ({values[0]} vs {next(v for v in values if v != values[0])}); "
                          "members may differ only in member keys")
    return values[0]


def warmup_lr(lr: float, warmup_steps: int, step: int) -> float:
    """The learning rate ``grokking.optim.set_warmup_lr`` leaves in place for loop step ``step``."""
    return lr * min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else lr


def member_values(values: dict[str, list], like: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-member scalars as (M,) tensors of ``like``'s dtype on its device (one transfer)."""
    table = torch.tensor(list(values.values()), dtype=like.dtype).to(like.device, non_blocking=True)
    return dict(zip(values, table))


def per_member(values: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    """(M,) -> (M, 1, ..., 1): broadcasts over each member's slice of ``param``."""
    return values.view(-1, *[1] * (param.dim() - 1))


class PackedOptimizer:
    """One optimizer step of every member; ``steps[i]`` is member i's loop step (0-based) before it."""

    def __init__(self, cfgs: list, params: list[torch.Tensor]):
        self.name = same_for_all([c.name for c in cfgs], "optimizer.name")
        if self.name not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer '{self.name}'; allowed: {', '.join(OPTIMIZERS)}")
        self.cfgs, self.params = cfgs, params
        self.lr = [float(c.lr) for c in cfgs]
        self.weight_decay = [float(c.weight_decay) for c in cfgs]
        self.warmup = [int(c.warmup_steps) for c in cfgs]
        self.orthogonal = [bool(c.orthogonal) for c in cfgs]
        # Adam and AdamW on a CPU step through torch's fused kernel (one pass over each tensor
        # where ``apply`` takes a dozen: a third of a small pack's step); elsewhere through the
        # table's scalars, which a CUDA graph captures (grokking/training/engines/capture.py)
        self.fused = self.name != "sgd" and params[0].device.type == "cpu" and FUSED_ADAM_ON_CPU
        if self.name == "sgd":
            self.momentum = [float(c.momentum) for c in cfgs]
            self.nesterov = [bool(c.nesterov) for c in cfgs]
            self.state = {"momentum_buffer": [torch.zeros_like(p) for p in params]}
        else:
            self.betas = [tuple(float(b) for b in c.betas) for c in cfgs]
            self.eps = [float(c.eps) for c in cfgs]
            self.state = {"exp_avg": [torch.zeros_like(p) for p in params],
                          "exp_avg_sq": [torch.zeros_like(p) for p in params]}

    def tensors(self) -> list[torch.Tensor]:
        """Every state tensor with a leading member dimension."""
        return [t for ts in self.state.values() for t in ts]

    def step(self, steps: list[int]) -> None:
        if self.fused:
            self.fused_adam(steps)
        else:
            self.apply(member_values(self.table(steps), self.params[0]))

    @torch.no_grad()
    def fused_adam(self, steps: list[int]) -> None:
        """One step with torch's fused Adam(W), once per set of members that share this step's
        hyperparameters (all of a seed grid's members: then the stacked tensors go in whole).
        The arithmetic is torch's fused kernel's, which differs from the single-tensor step a
        solo run takes on a CPU in the order of a few operations (last-bit differences, as the
        batched products have)."""
        lrs = [warmup_lr(lr, w, s) for lr, w, s in zip(self.lr, self.warmup, steps)]
        grads = [p.grad for p in self.params]
        if any(self.orthogonal):
            chosen = torch.tensor(self.orthogonal, device=self.params[0].device)
            grads = [torch.where(per_member(chosen, p), orthogonal_gradient(p, g), g) for p, g in zip(self.params, grads)]
        groups: dict[tuple, list[int]] = {}
        for i, key in enumerate(zip(lrs, self.weight_decay, self.betas, self.eps, steps)):
            groups.setdefault(key, []).append(i)
        kernel = torch._fused_adamw_ if self.name == "adamw" else torch._fused_adam_
        exp_avgs, exp_avg_sqs = self.state["exp_avg"], self.state["exp_avg_sq"]
        for (lr, wd, (b1, b2), eps, step), members in groups.items():
            whole = len(members) == len(self.lr)
            pick = (lambda ts: list(ts)) if whole else (lambda ts: [t[i] for t in ts for i in members])
            tensors = pick(self.params)
            kernel(tensors, pick(grads), pick(exp_avgs), pick(exp_avg_sqs), [],
                   [torch.tensor(step + 1.0)] * len(tensors), lr=lr, beta1=b1, beta2=b2, weight_decay=wd,
                   eps=eps, amsgrad=False, maximize=False)

    def table(self, steps: list[int]) -> dict[str, list]:
        """The per-member scalars of this step, computed on the host (a captured step copies
        them into its graph's input, grokking/training/engines/capture.py)."""
        lrs = [warmup_lr(lr, w, s) for lr, w, s in zip(self.lr, self.warmup, steps)]
        orthogonal = {"orthogonal": self.orthogonal} if any(self.orthogonal) else {}
        if self.name == "sgd":
            return {"first": [s == 0 for s in steps], "momentum": self.momentum, "wd": self.weight_decay,
                    "nesterov": self.nesterov, "neg_lr": [-lr for lr in lrs], **orthogonal}
        t = [s + 1.0 for s in steps]  # torch's state "step" after its increment
        b1 = [b for b, _ in self.betas]
        b2 = [b for _, b in self.betas]
        return {
            **orthogonal,
            "decay": [1 - lr * wd for lr, wd in zip(lrs, self.weight_decay)],
            "wd": self.weight_decay,
            "one_minus_b1": [1 - b for b in b1],
            "b2": b2,
            "one_minus_b2": [1 - b for b in b2],
            "bc2_sqrt": [(1 - b ** s) ** 0.5 for b, s in zip(b2, t)],
            "eps": self.eps,
            "neg_step_size": [-(lr / (1 - b ** s)) for lr, b, s in zip(lrs, b1, t)],
        }

    @torch.no_grad()
    def apply(self, coefs: dict[str, torch.Tensor]) -> None:
        """The step itself, from ``table``'s scalars as (M,) tensors on the parameters' device."""
        if self.name == "sgd":
            self.sgd(coefs)
        else:
            self.adam(coefs)

    def gradient(self, param: torch.Tensor, c: dict[str, torch.Tensor]) -> torch.Tensor:
        """The gradient the step uses: ``param.grad``, after ⊥Grad for the members that ask for it
        (a new tensor: ``.grad`` keeps the raw gradients)."""
        if "orthogonal" not in c:
            return param.grad
        return torch.where(c["orthogonal"].bool(), orthogonal_gradient(param, param.grad), param.grad)

    def adam(self, coefs: dict[str, torch.Tensor]) -> None:
        decoupled = self.name == "adamw"
        for i, param in enumerate(self.params):
            c = {k: per_member(v, param) for k, v in coefs.items()}
            grad, exp_avg, exp_avg_sq = self.gradient(param, c), self.state["exp_avg"][i], self.state["exp_avg_sq"][i]
            if decoupled:
                param.mul_(c["decay"])
            else:
                grad = grad + param * c["wd"]
            exp_avg.lerp_(grad, c["one_minus_b1"])
            exp_avg_sq.mul_(c["b2"]).add_(grad * c["one_minus_b2"] * grad)
            denom = (exp_avg_sq.sqrt() / c["bc2_sqrt"]).add_(c["eps"])
            param.add_(exp_avg * c["neg_step_size"] / denom)

    def sgd(self, coefs: dict[str, torch.Tensor]) -> None:
        for i, param in enumerate(self.params):
            c = {k: per_member(v, param) for k, v in coefs.items()}
            grad = self.gradient(param, c) + param * c["wd"]
            buf = self.state["momentum_buffer"][i]
            buf.copy_(torch.where(c["first"].bool(), grad, buf * c["momentum"] + grad))
            update = torch.where(c["nesterov"].bool(), grad + buf * c["momentum"], buf)
            param.add_(update * c["neg_lr"])

    # --- a member's state in torch.optim's format --------------------------------------------

    def member_state(self, i: int, solo_optimizer: torch.optim.Optimizer, step: int) -> dict:
        """Member i's state as ``solo_optimizer.state_dict()`` would hold it after ``step`` steps."""
        params = [p for group in solo_optimizer.param_groups for p in group["params"]]
        for group in solo_optimizer.param_groups:
            group["lr"] = warmup_lr(self.lr[i], self.warmup[i], step - 1) if step > 0 else self.lr[i]
        if step > 0:
            for k, solo in enumerate(params):
                state = {}
                if self.name == "sgd":
                    if self.momentum[i] != 0:
                        state["momentum_buffer"] = self.state["momentum_buffer"][k][i].clone()
                else:
                    state = {"step": torch.tensor(float(step)),
                             **{key: ts[k][i].clone() for key, ts in self.state.items()}}
                if state:
                    solo_optimizer.state[solo] = state
        return solo_optimizer.state_dict()

    @torch.no_grad()
    def load_member_state(self, i: int, solo_optimizer: torch.optim.Optimizer, state: dict) -> None:
        """Inverse of ``member_state``: ``state`` is a solo optimizer's ``state_dict()``."""
        solo_optimizer.load_state_dict(state)
        params = [p for group in solo_optimizer.param_groups for p in group["params"]]
        for k, solo in enumerate(params):
            held = solo_optimizer.state.get(solo, {})
            for key, ts in self.state.items():
                value = held.get(key)
                ts[k][i] = 0 if value is None else value.to(ts[k].device)


def orthogonal_gradient(param: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """``grokking.optim.orthogonalize_`` on each member's slice of a stacked parameter: every
    member's gradient without its component along that member's weights, rescaled to its norm."""
    w, g = param.flatten(1), grad.flatten(1)
    along = (w * g).sum(dim=1) / ((w * w).sum(dim=1) + ORTHOGONAL_EPS)
    g_orth = g - along[:, None] * w
    scale = torch.linalg.vector_norm(g, dim=1) / (torch.linalg.vector_norm(g_orth, dim=1) + ORTHOGONAL_EPS)
    return (g_orth * scale[:, None]).view_as(grad)


class PackedGradFilter:
    """Grokfast (Lee et al. 2024) per member, as ``grokking.optim.GradFilter``: ``ema`` keeps a
    running mean, ``ma`` a ring of the last ``window`` gradients (slot ``k % window`` holds the
    member's k-th gradient, so the layout follows from the member's step alone)."""

    def __init__(self, cfgs: list, params: list[torch.Tensor]):
        self.name = same_for_all([c.name for c in cfgs], "grokfast.name")
        if self.name not in ("ema", "ma"):
            raise ConfigError(f"unknown grokfast '{self.name}'; allowed: none, ema, ma")
        self.params, self.lamb = params, [float(c.lamb) for c in cfgs]
        if self.name == "ema":
            self.alpha = [float(c.alpha) for c in cfgs]
            self.avg = [torch.zeros_like(p) for p in params]
        else:
            self.window = same_for_all([int(c.window) for c in cfgs], "grokfast.window")
            self.ring = [torch.zeros(p.shape[0], self.window, *p.shape[1:], device=p.device) for p in params]

    def tensors(self) -> list[torch.Tensor]:
        return self.avg if self.name == "ema" else self.ring

    @torch.no_grad()
    def apply(self, steps: list[int]) -> None:
        """Filter the gradients of the step each member is at (``steps[i]`` gradients seen before)."""
        if self.name == "ema":
            coefs = member_values({"lamb": self.lamb, "first": [s == 0 for s in steps],
                                   "one_minus_alpha": [1 - a for a in self.alpha]}, self.params[0])
        else:
            coefs = member_values({"lamb": self.lamb, "full": [s + 1 >= self.window for s in steps]}, self.params[0])
            members = torch.arange(len(steps), device=self.params[0].device)
            slots = torch.tensor([s % self.window for s in steps], device=self.params[0].device)
        for i, param in enumerate(self.params):
            c, grad = {k: per_member(v, param) for k, v in coefs.items()}, param.grad
            if self.name == "ema":
                avg = self.avg[i]
                avg.copy_(torch.where(c["first"].bool(), grad, avg.lerp(grad, c["one_minus_alpha"])))
                grad.add_(avg * c["lamb"])
            else:
                ring = self.ring[i]
                ring[members, slots] = grad
                grad.copy_(torch.where(c["full"].bool(), grad + ring.mean(dim=1) * c["lamb"], grad))

    def member_state(self, i: int, step: int) -> dict:
        """Member i's state in ``GradFilter.state_dict()`` format after ``step`` steps."""
        if self.name == "ema":
            return {"avg": [a[i].clone() for a in self.avg] if step > 0 else None, "history": None}
        kept = range(max(0, step - self.window), step)
        return {"avg": None, "history": [[r[i, k % self.window].clone() for r in self.ring] for k in kept]}

    @torch.no_grad()
    def load_member_state(self, i: int, state: dict, step: int) -> None:
        if self.name == "ema":
            for a, value in zip(self.avg, state["avg"] or [None] * len(self.avg)):
                a[i] = 0 if value is None else value.to(a.device)
            return
        history = state["history"] or []
        for r in self.ring:
            r[i] = 0
        for k, grads in zip(range(step - len(history), step), history):
            for r, g in zip(self.ring, grads):
                r[i, k % self.window] = g.to(r.device)

