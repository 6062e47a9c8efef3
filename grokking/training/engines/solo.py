"""``SoloEngine``: one run trained through its own module, the plain PyTorch path."""
from __future__ import annotations

import torch
from omegaconf import OmegaConf

from grokking.metrics import norms
from grokking.optim import build_grad_filter, build_optimizer, set_warmup_lr
from grokking.training.engines.build import Member
from grokking.training.evaluate import evaluate
from grokking.training.loss import per_example_loss


class SoloEngine:
    """The engine interface (grokking/training/engines/__init__.py) over one model."""

    def __init__(self, member: Member, device):
        cfg, self.model, self.batches = member.cfg, member.model, member.batches
        self.cfg, self.datasets, self.device = cfg, [member.data], torch.device(device)
        self.optimizer = build_optimizer(cfg.optimizer, self.model.parameters())
        self.grad_filter = build_grad_filter(cfg.grokfast, self.model.parameters())
        data = member.data
        self.x_train, self.y_train = data.inputs[data.train_idx], data.labels[data.train_idx]
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        # plain values for the hot loop: a DictConfig lookup costs tens of microseconds
        self.loss_kind, self.loss_dtype = str(cfg.loss), str(cfg.loss_dtype)
        self.warmup = OmegaConf.to_container(cfg.optimizer, resolve=True)
        self.steps = 0  # optimizer steps taken
        self.grad_norms: list[dict] = [{}]

    def __len__(self) -> int:
        return 1

    def step(self, active: list[bool], grad_norms: bool = False) -> torch.Tensor:
        """One optimizer step (when ``active[0]``); returns the step's training loss, (1,)."""
        if not active[0]:
            return torch.full((1,), float("nan"))
        set_warmup_lr(self.optimizer, self.warmup, self.steps)
        if self.batches.full:
            x, y = self.x_train, self.y_train
        else:
            idx = self.batches.next()
            x, y = self.x_train[idx], self.y_train[idx]
        loss = per_example_loss(self.forward(x), y, self.loss_kind, self.loss_dtype).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_norms:
            self.grad_norms = [norms.grad_norms(self.model)]
        if self.grad_filter:
            self.grad_filter.apply()
        self.optimizer.step()
        self.steps += 1
        return loss.detach().reshape(1)

    def evaluate(self, idx: list[int], features: list[bool]) -> list[tuple]:
        return [evaluate(self.model, self.datasets[0], self.cfg, features=features[0])] if idx else []

    def model_of(self, i: int) -> torch.nn.Module:
        return self.model

    def member_state(self, i: int) -> dict:
        return {"step": self.steps, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "grad_filter": self.grad_filter.state_dict() if self.grad_filter else None,
                "batches": self.batches.state_dict()}

    def load_member_state(self, i: int, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.grad_filter:
            self.grad_filter.load_state_dict(state["grad_filter"])
        self.batches.load_state_dict(state["batches"])
        self.steps = int(state["step"])
