"""The training loop: one or more runs on one engine. A solo run is a pack of one.

    train(cfg, run_dir)                 one run; returns its summary, raises what ended it
    train_runs(cfgs, run_dirs)          several runs of one shape together (``pack=N``)

Each run (grokking/training/run.py) holds its own record, history and status; the engine
(grokking/training/engines) holds the models. Every iteration steps the runs that are furthest
behind (runs continued from different steps are brought level first, so each follows exactly
the trajectory it would follow alone), then evaluates and checkpoints those that are due. A run
that is done or diverged is ended and frozen; the others go on. A stop signal saves every
unfinished run at the next step boundary, then is handed on (grokking/preemption.py).
"""
from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from pathlib import Path

import torch
from omegaconf import DictConfig

from grokking import schema
from grokking.errors import ConfigError
from grokking.training.together import check_together
from grokking.preemption import StopSignals
from grokking.progress import Progress
from grokking.runlock import run_lock
from grokking.training.device import pick_device, set_determinism
from grokking.training.engines import build_engine
from grokking.training.engines.build import build_member
from grokking.training.host_memory import keep_freed_memory
from grokking.training.run import COMPLETED, Run

log = logging.getLogger("grokking.train")


def train(cfg: DictConfig, run_dir: Path) -> dict:
    """Train (or continue) the run in ``run_dir`` and return its summary; what ended it (bad
    input, a folder in use, divergence) is raised after its record says so."""
    (outcome,) = train_runs([cfg], [Path(run_dir)])
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def train_runs(cfgs: list[DictConfig], run_dirs: list[Path], hydra_cfgs: list | None = None) -> list:
    """Train (or continue) the runs in ``run_dirs`` together. Returns, per run, its summary or
    the exception that ended that run alone (its record says so too); an error of the whole loop
    (a stop signal, a crash) marks the unfinished runs and is raised. Each run holds its folder's
    lock (grokking/runlock.py) while it trains."""
    check_together(cfgs)
    runs = [Run(c, d, h) for c, d, h in zip(cfgs, run_dirs, hydra_cfgs or [None] * len(cfgs))]
    with ExitStack() as locks:
        for run in runs:
            try:
                locks.enter_context(run_lock(run.dir))
                run.open()
            except ConfigError as e:
                run.refuse(e)
        try:
            train_together([r for r in runs if r.running])
        except BaseException as e:
            for run in runs:
                if run.running:
                    run.fail(e)
            raise
    return [r.outcome for r in runs]


def train_together(runs: list[Run]) -> None:
    """Build the runs' engine (a run whose values are out of range or cannot be built fails
    alone) and train it."""
    if not runs:
        return
    first = runs[0].cfg  # the per-process settings, which check_together made common
    set_determinism(first.deterministic)
    keep_freed_memory()
    if first.threads:
        torch.set_num_threads(first.threads)
    device = pick_device(first.device)
    members, built = [], []
    for run in runs:
        try:
            schema.check_ranges(run.cfg)
            members.append(build_member(run.cfg, device, fresh=run.stored is None))
            built.append(run)
        except ConfigError as e:
            run.fail(e)
    if not built:
        return
    engine = build_engine(members, device)
    with ExitStack() as loggers:
        for i, run in enumerate(built):
            run.start(engine, i, labelled=len(built) > 1)
            loggers.enter_context(run.logger)
        resumed = next((r.stored for r in built if r.stored is not None), None)
        if resumed is not None:
            torch.set_rng_state(resumed["rng"])
        Loop(engine, built).run()


class Loop:
    """Steps, evaluations and checkpoints of the runs of one engine, in the order a solo run
    has them: step, evaluate when due, snapshot when due, stop on a signal."""

    def __init__(self, engine, runs: list[Run]):
        self.engine, self.runs = engine, runs
        first = runs[0].cfg
        low = min(r.step for r in runs)
        self.progress = Progress(first.progress, max(r.cfg.steps for r in runs), low, first.progress_every_s)
        started = time.time()  # wall_time_s counts the loop and its evaluations, not the set-up
        for run in runs:
            run.started = started

    def run(self) -> None:
        runs = self.runs
        fresh = [i for i, r in enumerate(runs) if not r.history]
        if fresh:
            self.evaluate(fresh)
        with StopSignals() as signals:
            while True:
                finished, now = [r for r in runs if r.running and r.done()], time.time()
                for run in finished:
                    run.end(COMPLETED, at=now)
                pending = [r.step for r in runs if r.running]
                if not pending:
                    break
                movers = [i for i, r in enumerate(runs) if r.running and r.step == min(pending)]
                self.step(movers)
                if signals.received is not None:
                    log.info("signal %d at step %d: checkpoint saved, stopping", signals.received, min(pending) + 1)
                    for i, run in enumerate(runs):
                        if run.running:
                            run.interrupt(self.engine, i)
                    signals.forward()
        self.progress.close()

    def step(self, movers: list[int]) -> None:
        """One optimizer step of ``movers``, then their evaluations and snapshots."""
        runs = self.runs
        grad_norms = any(runs[i].evaluated_at(runs[i].step + 1) for i in movers)  # logged with the evaluation
        self.engine.step([i in movers for i in range(len(runs))], grad_norms=grad_norms)
        for i in movers:
            runs[i].step += 1
        due = [i for i in movers if runs[i].evaluated_at(runs[i].step)]
        if due:
            self.evaluate(due)
        for i in movers:
            if runs[i].running and runs[i].snapshot_due():
                runs[i].save(self.engine, i, snapshot=True)

    def evaluate(self, idx: list[int]) -> None:
        runs, engine = self.runs, self.engine
        results = engine.evaluate(idx, [runs[i].wants_features() for i in idx])
        records = []
        for i, (values, logits, feats) in zip(idx, results):
            rec = runs[i].log_eval(engine.model_of(i), values, logits, feats, engine.grad_norms[i], self.progress)
            if rec is not None:
                records.append(rec)
        if records:  # the bar shows the weakest run
            shown = {"train/acc": min(r["train/acc"] for r in records), "val/acc": min(r["val/acc"] for r in records),
                     "train/loss": max(r["train/loss"] for r in records)}
            self.progress.update(min(r["step"] for r in records), shown,
                                 final=all(not r.running or r.done() for r in runs))
