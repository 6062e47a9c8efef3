"""``PackedRun``: several runs of one shape trained side by side as one batched model.

Each member is built exactly as its solo run (``build.build_member``), so its initial weights,
split and minibatches are the solo run's. The members' parameters are then stacked along a
leading member dimension; one ``step`` runs one forward, one backward and one optimizer step for
all of them. Members may differ in any member key (docs/packing.md); what they must share is
checked here.
"""
from __future__ import annotations

import copy
import math

import torch

from grokking.metrics.norms import l2_from_norms
from grokking.optim import build_optimizer
from grokking.training.engines.build import Member, build_member
from grokking.training.engines.capture import StaticStep
from grokking.training.engines.packed_optim import PackedGradFilter, PackedOptimizer, same_for_all
from grokking.training.engines.stacked import batched_forward, stack_parameters
from grokking.training.evaluate import evaluate
from grokking.training.loss import per_example_loss

# A step and an evaluation run over members in chunks of at most this many activations (rows x
# widest layer, 16 MB) each, which keeps every activation below glibc's mmap threshold
# (grokking/training/host_memory.py) and large products large. Measured on the 2-core CPU of
# docs/packing_speed.md (default MLP, step alone): at p 23 x 16 members one chunk is 2.9x the solo
# steps, chunks of 4 members 2.4x; at p 47 x 8, chunks of 4 members 1.8x, of 1 member 1.0x.
CHUNK_FLOATS = 2**22


class PackedRun:
    """The engine interface (grokking/training/engines/__init__.py) over stacked weights: a
    batched optimizer and filter, and each member's own minibatches."""

    def __init__(self, members: list[Member], device):
        cfgs = [m.cfg for m in members]
        self.members, self.device = cfgs, torch.device(device)
        self.batches = [m.batches for m in members]
        self.datasets = [m.data for m in members]  # each member's data set on the device
        shapes = [(tuple(d.inputs.shape), d.n_classes) for d in self.datasets]
        same_for_all(shapes, "the data table's shape (examples, operands) and number of classes")
        self.loss_kind = same_for_all([str(c.loss) for c in cfgs], "loss")
        self.loss_dtype = same_for_all([str(c.loss_dtype) for c in cfgs], "loss_dtype")
        self.inputs = torch.stack([d.inputs for d in self.datasets])  # (M, N, operands)
        self.labels = torch.stack([d.labels for d in self.datasets])  # (M, N)
        self.train_idx, self.val_idx = [d.train_idx for d in self.datasets], [d.val_idx for d in self.datasets]
        self.full_batch = [b.full for b in self.batches]
        self.template = members[0].model
        self.forward = batched_forward(self.template)
        self.params = stack_parameters([m.model for m in members])
        tensors = list(self.params.values())
        self.optimizer = PackedOptimizer([c.optimizer for c in cfgs], tensors)
        filters = same_for_all([c.grokfast.name for c in cfgs], "grokfast.name")
        self.grad_filter = None if filters == "none" else PackedGradFilter([c.grokfast for c in cfgs], tensors)
        self.steps = [0] * len(cfgs)  # optimizer steps each member has taken
        self.grad_norms: list[dict] = [{} for _ in cfgs]  # of the last step that asked for them
        self.solo_models: dict[int, tuple[int, torch.nn.Module]] = {}  # member -> (its step, its model)
        self.fixed_batch = self.rows_batch([t for t in self.train_idx]) if all(self.full_batch) else None
        for param in tensors:  # each step writes every member's slice
            param.grad = torch.zeros_like(param)
        self.static_step = StaticStep(self) if StaticStep.applies(self) else None  # a CUDA graph on a GPU

    @classmethod
    def build(cls, cfgs: list, device) -> "PackedRun":
        """The pack of these configs, each member built afresh as its solo run."""
        return cls([build_member(cfg, device, fresh=True) for cfg in cfgs], device)

    def __len__(self) -> int:
        return len(self.members)

    # --- training ----------------------------------------------------------------------------

    def rows_batch(self, rows: list[torch.Tensor]) -> dict:
        """Inputs, labels and loss weights of one step from each member's rows of its table."""
        counts = [len(r) for r in rows]
        longest = max(counts)
        padded = torch.stack([torch.cat([r, r.new_zeros(longest - len(r))]) for r in rows])
        members = torch.arange(len(rows), device=padded.device)[:, None]
        x, y = self.inputs[members, padded], self.labels[members, padded]
        mask = None
        if min(counts) != longest:
            mask = (torch.arange(longest, device=padded.device) < torch.tensor(counts, device=padded.device)[:, None])
        return {"x": x, "y": y, "mask": mask,
                "counts": torch.tensor(counts, device=padded.device)}

    def next_batch(self, active: list[bool]) -> dict:
        if self.fixed_batch is not None:
            return self.fixed_batch
        rows = []
        for i, (batches, train_idx) in enumerate(zip(self.batches, self.train_idx)):
            if self.full_batch[i]:
                rows.append(train_idx)
            else:  # a frozen member's batches stay where they are: it trains on any batch, then is restored
                rows.append(train_idx[batches.next() if active[i] else torch.arange(batches.size, device=train_idx.device)])
        return self.rows_batch(rows)

    def chunks(self, rows: int) -> list[slice]:
        """The members in runs of about equal size, each holding at most CHUNK_FLOATS
        activations of ``rows`` rows, on a CPU; on a GPU the whole pack (its memory holds it,
        and one launch per operation for all members is what it wants)."""
        if self.device.type != "cpu":
            return [slice(0, len(self))]
        widest = max(t.shape[-1] for t in self.params.values())
        n = math.ceil(len(self) / max(1, CHUNK_FLOATS // (rows * widest)))
        size = math.ceil(len(self) / n)
        return [slice(start, start + size) for start in range(0, len(self), size)]

    def member_losses(self, params: dict, batch: dict) -> torch.Tensor:
        logits = self.forward(params, batch["x"])
        losses = per_example_loss(logits.flatten(0, 1), batch["y"].flatten(), self.loss_kind, self.loss_dtype)
        losses = losses.view(batch["y"].shape)
        if batch["mask"] is None:
            return losses.mean(dim=1)
        return (losses * batch["mask"]).sum(dim=1) / batch["counts"]

    def state_tensors(self) -> list[torch.Tensor]:
        """Everything a step changes, each with a leading member dimension."""
        filtered = self.grad_filter.tensors() if self.grad_filter else []
        return [*self.params.values(), *self.optimizer.tensors(), *filtered]

    def step(self, active, grad_norms: bool = False) -> torch.Tensor:
        """One optimizer step of every active member; the others stay exactly as they are.
        ``grad_norms``: keep each member's gradient norms of this step in ``self.grad_norms``
        (as a solo run logs them with the evaluation that follows).

        Returns each member's training loss of this step (NaN for inactive members)."""
        active = [bool(a) for a in active]
        if len(active) != len(self):
            raise ValueError(f"step: {len(active)} flags for {len(self)} members")
        if not any(active):
            return torch.full((len(self),), math.nan)
        frozen = torch.tensor([i for i, a in enumerate(active) if not a], dtype=torch.long, device=self.device)
        with torch.no_grad():
            kept = [t[frozen] for t in self.state_tensors()] if len(frozen) else []
        static = self.static_step is not None and not len(frozen)
        losses = self.static_step.step(self.steps) if static else self.backward(self.next_batch(active))
        if grad_norms:  # the raw gradients: neither optimizer changes .grad, the filter does
            self.grad_norms = member_grad_norms(self.params)
        if not static:
            if self.grad_filter:
                self.grad_filter.apply(self.steps)
            self.optimizer.step(self.steps)
        with torch.no_grad():
            for tensor, value in zip(self.state_tensors(), kept):
                tensor[frozen] = value
        self.steps = [s + a for s, a in zip(self.steps, active)]
        losses[frozen] = math.nan
        return losses

    def backward(self, batch: dict) -> torch.Tensor:
        """Each member's loss on ``batch``, its gradients left in the stacked ``.grad``; chunk by
        chunk of members, each chunk's gradients taken for its slices alone."""
        losses = torch.empty(len(self), device=self.device)
        for part in self.chunks(batch["x"].shape[1]):
            params = {name: p[part] for name, p in self.params.items()}
            chunk = {key: None if value is None else value[part] for key, value in batch.items()}
            chunk_losses = self.member_losses(params, chunk)
            grads = torch.autograd.grad(chunk_losses.sum(), list(params.values()))
            with torch.no_grad():
                for param, grad in zip(self.params.values(), grads):
                    param.grad[part] = grad
                losses[part] = chunk_losses
        return losses

    # --- evaluation ----------------------------------------------------------------------------

    @torch.no_grad()
    def outputs(self, features: bool = False):
        """Logits (M, N, classes) of every member on every example, and the features the solo
        ``forward(x, features=True)`` returns (each (M, ...)), evaluated in chunks of members."""
        logits, feats = [], []
        for part in self.chunks(self.inputs.shape[1]):
            x = self.inputs[part]
            params = {name: p[part] for name, p in self.params.items()}
            out = self.forward(params, x, features=features)
            logits.append(out[0] if features else out)
            feats.append(out[1] if features else {})
        merged = {key: torch.cat([f[key] for f in feats]) for key in feats[0]}
        return torch.cat(logits), merged

    def evaluate(self, idx: list[int], features: list[bool]) -> list[tuple]:
        """Per member in ``idx``: (values, logits, features) as ``grokking.training.evaluate``
        gives them for its solo model. Values come from one batched pass over every member; a
        member that needs its features (a metric reads them) is evaluated on its solo model."""
        logits, _ = self.outputs()
        values = self.split_values(logits)
        out = []
        for i, wants in zip(idx, features):
            if wants:
                _, member_logits, feats = evaluate(self.model_of(i), self.datasets[i], self.members[i], features=True)
                out.append((values[i], member_logits, feats))
            else:
                out.append((values[i], logits[i], {}))
        return out

    def split_values(self, logits: torch.Tensor) -> list[dict]:
        """Per member {"train/loss", "train/acc", "val/loss", "val/acc"} of (M, N, classes) logits."""
        losses = per_example_loss(logits.flatten(0, 1), self.labels.flatten(), self.loss_kind, self.loss_dtype)
        losses = losses.float().view(self.labels.shape)
        correct = (logits.argmax(dim=-1) == self.labels).float()
        values = [x[i][idx].mean() for i in range(len(self)) for idx in (self.train_idx[i], self.val_idx[i])
                  for x in (losses, correct)]
        flat = torch.stack(values).tolist()
        keys = ("train/loss", "train/acc", "val/loss", "val/acc")
        return [dict(zip(keys, flat[4 * i: 4 * i + 4])) for i in range(len(self))]

    # --- one member in the solo formats --------------------------------------------------------

    def model_of(self, i: int) -> torch.nn.Module:
        """A solo model (on the pack's device) holding member i's current weights; one copy per
        member and step, however often the metrics and checkpoints of that step ask."""
        cached = self.solo_models.get(i)
        if cached is not None and cached[0] == self.steps[i]:
            return cached[1]
        model = copy.deepcopy(self.template)
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.copy_(self.params[name][i])
        self.solo_models[i] = (self.steps[i], model)
        return model

    def member_state(self, i: int) -> dict:
        """Member i in the solo checkpoint's format: {"step", "model", "optimizer", "grad_filter",
        "batches"}, each as ``run_training`` stores it (the loop adds rng, config, ...)."""
        model, step = self.model_of(i), self.steps[i]
        solo_optimizer = build_optimizer(self.members[i].optimizer, model.parameters())
        return {
            "step": step,
            "model": model.state_dict(),
            "optimizer": self.optimizer.member_state(i, solo_optimizer, step),
            "grad_filter": self.grad_filter.member_state(i, step) if self.grad_filter else None,
            "batches": self.batches[i].state_dict(),
        }

    @torch.no_grad()
    def load_member_state(self, i: int, state: dict) -> None:
        """Put member i where a solo checkpoint (or ``member_state``) left it; ``state`` needs
        "step", "model", "optimizer", "grad_filter" (may be None without Grokfast), "batches"."""
        model = copy.deepcopy(self.template)
        model.load_state_dict(state["model"])
        for name, param in model.named_parameters():
            self.params[name][i] = param
        step = int(state["step"])
        self.optimizer.load_member_state(i, build_optimizer(self.members[i].optimizer, model.parameters()),
                                         state["optimizer"])
        if self.grad_filter:
            self.grad_filter.load_member_state(i, state["grad_filter"], step)
        self.batches[i].load_state_dict(state["batches"])
        self.steps[i] = step
        self.solo_models.pop(i, None)


@torch.no_grad()
def member_grad_norms(params: dict[str, torch.Tensor]) -> list[dict]:
    """grad_norm and grad_norm/<group> of each member, as grokking.metrics.norms.grad_norms
    computes them for a solo model (the member dimension is summed over separately)."""
    named = [(name, p.grad) for name, p in params.items() if p.grad is not None]
    norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for _, g in named], dim=1).tolist()
    return [l2_from_norms([name for name, _ in named], row, "grad_norm") for row in norms]
