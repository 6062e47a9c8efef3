"""The packed step of a full-batch pack, recorded once as a CUDA graph and replayed.

A pack of small models on a GPU spends its step launching kernels (a few hundred per step, each
a few microseconds of work). Where every member trains on its whole training set (the same
tensors every step) and no Grokfast filter runs, the step's forward, backward and optimizer
update launch the same kernels on the same memory every time, so they are captured once and
replayed: one launch per step. The only input that changes, the optimizer's per-member scalars
(learning rate after warm-up, Adam's bias corrections), is computed on the host as in the eager
step and copied into the graph's table before each replay.

A CPU has no graph and steps eagerly (its optimizer through the fused kernel), but
``StaticStep.step`` runs the same body eagerly there, which is what the CPU test holds against
the table-driven eager step (tests/test_pack_engine.py); on a GPU the test compares the replayed
step with the eager one.
"""
from __future__ import annotations

import torch

WARMUP_STEPS = 3  # eager steps on a side stream before capture (cuBLAS and autograd set up there)


class StaticStep:
    """``step(steps)`` trains every member of ``pack`` one step and returns their losses; a step
    with frozen members goes through the pack's ordinary eager step instead."""

    def __init__(self, pack):
        self.pack = pack
        self.names = list(pack.optimizer.table(pack.steps))
        self.table = torch.zeros(len(self.names), len(pack), device=pack.device)
        self.coefs = dict(zip(self.names, self.table))
        self.graph, self.losses, self.warmed = None, None, 0

    @staticmethod
    def applies(pack) -> bool:
        """A full-batch pack without a Grokfast filter on a GPU (a CPU has no graph to capture)."""
        return pack.device.type == "cuda" and pack.fixed_batch is not None and pack.grad_filter is None

    def body(self) -> torch.Tensor:
        losses = self.pack.backward(self.pack.fixed_batch)
        self.pack.optimizer.apply(self.coefs)
        return losses

    def step(self, steps: list[int]) -> torch.Tensor:
        values = self.pack.optimizer.table(steps)
        with torch.no_grad():
            self.table.copy_(torch.tensor([values[n] for n in self.names], dtype=self.table.dtype))
        if self.pack.device.type != "cuda":
            return self.body()
        if self.graph is None and self.warmed < WARMUP_STEPS:
            self.warmed += 1
            return self.on_side_stream()
        if self.graph is None:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.losses = self.body()
        self.graph.replay()
        return self.losses.clone()

    def on_side_stream(self) -> torch.Tensor:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            losses = self.body()
        torch.cuda.current_stream().wait_stream(side)
        return losses
