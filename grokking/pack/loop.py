"""The packed training loop: the runs of one pack trained together, each still an ordinary run.

``train_pack(cfgs, run_dirs)`` is ``grokking.train.train`` for several runs at once. The engine
(grokking/pack/engine.py, ``PackedRun``) holds the stacked models and does one optimizer step of
every active member at a time; everything else is per member, as in ``run_training``: its own
RunRecord (metrics.jsonl, summary.json, checkpoints in the solo format, so that a solo run can
continue it), milestones, early stop, metrics (MetricSuite on the member's solo model), W&B run
and status. A member that is done (its steps, early stop) or diverged is frozen; the others go
on. A stop signal saves every unfinished member at the next step boundary, as a solo run does.

Members resumed from different steps (one was killed before its first checkpoint, say) are
brought level first: each iteration steps only the members at the lowest step, so every member
follows exactly the trajectory it would follow alone in the pack.
"""
from __future__ import annotations

import math

import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from grokking import schema
from grokking.data import build_dataset
from grokking.errors import ConfigError
from grokking.loggers import make_logger
from grokking.metrics import FEATURE_GROUPS, MetricSuite
from grokking.milestones import milestones
from grokking.milestones import update as update_milestones
from grokking.pack.engine import PackedRun
from grokking.pack.roles import first_difference, shape_signature
from grokking.preemption import StopSignals
from grokking.progress import Progress
from grokking.record import RunRecord, check_same_run
from grokking.schedule import eval_steps
from grokking.train import MILESTONE_NAMES, evaluate, pick_device, set_determinism

DIVERGED = "diverged"


@dataclass
class Member:
    """One run of the pack: its config, folder and everything ``run_training`` keeps per run."""

    cfg: DictConfig
    run_dir: Path
    hydra: DictConfig | None = None  # its full Hydra config (W&B group and name); None outside Hydra
    record: RunRecord = field(init=False)
    config: dict = field(init=False)
    stored: dict | None = None
    status: str = "running"
    error: str | None = None
    failure: Exception | None = None  # what ended this run alone (a bad value, divergence)
    step: int = 0
    wall_before: float = 0.0
    ended_at: float | None = None
    history: list = field(default_factory=list)
    marks: dict = field(default_factory=dict)
    hydra_files: dict = field(default_factory=dict)
    logger: object = None
    suite: MetricSuite | None = None
    data: object = None
    schedule: set = field(default_factory=set)

    def __post_init__(self):
        self.run_dir = Path(self.run_dir)
        self.record = RunRecord(self.run_dir)
        self.config = OmegaConf.to_container(self.cfg, resolve=True)

    @property
    def name(self) -> str:
        return self.run_dir.name

    @property
    def running(self) -> bool:
        return self.status == "running"

    def done(self) -> bool:
        """The solo loop's stop rule: all steps trained, or early stop reached."""
        last = self.history[-1] if self.history else {}
        early_stop = self.cfg.early_stop
        return self.step >= self.cfg.steps or (early_stop is not None and (last.get("val/acc") or 0) >= early_stop)

    def wall(self, started: float) -> float:
        return self.wall_before + (self.ended_at or time.time()) - started

    def summary(self, started: float, device) -> dict:
        out = {"status": self.status, "step": self.step, "steps": self.cfg.steps,
               **(self.history[-1] if self.history else {}), **self.marks}
        out["step"] = self.step  # a diverged run's last record is older than its step
        if self.error:
            out["error"] = self.error
        out.update(wall_time_s=round(self.wall(started), 3), device=str(device), run_dir=str(self.run_dir))
        return out


def check_pack(cfgs: list[DictConfig]) -> None:
    """Members must agree on every shape key (grokking/pack/roles.py) and on the device."""
    if not cfgs:
        raise ConfigError("a pack needs at least one run")
    first = shape_signature(cfgs[0])
    for cfg in cfgs[1:]:
        difference = first_difference(first, shape_signature(cfg))
        if difference:
            raise ConfigError(f"runs of one pack differ in the shape key {difference}; runs trained together "
                              "must agree on every shape key (docs/packing.md)")
        if cfg.device != cfgs[0].device:
            raise ConfigError(f"runs of one pack differ in device: {cfgs[0].device} vs {cfg.device}")


def train_pack(cfgs: list[DictConfig], run_dirs: list[Path], hydra_cfgs: list | None = None) -> list:
    """Train (or continue) the runs in ``run_dirs`` together. Returns, per run, its summary, or the
    exception that stopped that run alone (its record says so too); an error of the whole pack
    (a stop signal, a crash) marks the unfinished runs and is raised."""
    check_pack(cfgs)
    members = [Member(c, d, h) for c, d, h in zip(cfgs, run_dirs, hydra_cfgs or [None] * len(cfgs))]
    outcomes: dict[int, object] = {}
    for i, m in enumerate(members):
        try:
            open_member(m)
        except ConfigError as e:  # another run lives in that folder: its record is left as it was
            outcomes[i] = e
            print(f"grokking: error: {e}", file=sys.stderr, flush=True)
    runnable = [m for i, m in enumerate(members) if i not in outcomes]
    try:
        train_members(runnable)
    except BaseException as e:
        status = "interrupted" if isinstance(e, (KeyboardInterrupt, SystemExit)) else "failed"
        for m in runnable:
            if m.running:
                summary = m.record.read_summary()
                summary.update(status=status, error=f"{type(e).__name__}: {e}")
                m.record.write_summary(summary)
        raise
    for i, m in enumerate(members):
        if i not in outcomes:
            outcomes[i] = m.failure or m.record.read_summary()
    return [outcomes[i] for i in range(len(members))]


def open_member(m: Member) -> None:
    """Create the folder and read its last checkpoint; refuse a folder holding another run."""
    m.run_dir.mkdir(parents=True, exist_ok=True)
    m.stored = m.record.load_last()
    if m.stored is not None:
        try:
            check_same_run(m.stored["config"], m.config, m.run_dir)
        except ConfigError:
            m.record.restore_hydra_files(m.stored.get("hydra_files", {}))
            raise


def fail(m: Member, error: Exception) -> None:
    """A member that cannot start: its record says why, and so does one line on stderr."""
    m.status, m.error, m.failure = "failed", f"{type(error).__name__}: {error}", error
    summary = m.record.read_summary()
    summary.update(status="failed", error=m.error)
    m.record.write_summary(summary)
    print(f"grokking: error: {error} (run {m.name})", file=sys.stderr, flush=True)


def build_engine(members: list[Member], device) -> tuple[PackedRun | None, list[Member]]:
    """The engine of the members that can be built; a member whose config is refused (a bad
    value of its own, such as frac=0) fails alone and the others are built without it."""
    for m in members:
        try:
            schema.check_ranges(m.cfg)
        except ConfigError as e:
            fail(m, e)
    members = [m for m in members if m.running]
    try:
        return (PackedRun.build([m.cfg for m in members], device) if members else None), members
    except ConfigError:
        for m in members:  # find the culprits: each member built alone
            try:
                PackedRun.build([m.cfg], device)
            except ConfigError as e:
                fail(m, e)
        members = [m for m in members if m.running]
        return (PackedRun.build([m.cfg for m in members], device) if members else None), members


def restore(m: Member, i: int, engine: PackedRun) -> None:
    """Continue from the member's last.pt, or start its record afresh (as run_training)."""
    if m.stored is not None:
        m.step, m.wall_before = m.stored["step"], m.stored["wall_time_s"]
        engine.load_member_state(i, m.stored)
        m.history = m.record.keep_metrics_until(m.step)
    else:
        m.record.keep_metrics_until(-1)
    m.hydra_files = m.stored.get("hydra_files") if m.stored else m.record.hydra_files()
    m.marks = milestones(m.history, m.cfg.memorize_at, m.cfg.grok_at)
    m.schedule = eval_steps(m.cfg)


def open_logger(m: Member):
    """The member's logger; under Hydra the member's own Hydra config is current while W&B names
    its run (the sweep's group, the member's overrides), as in a solo job."""
    if m.hydra is not None:
        HydraConfig.instance().set_config(m.hydra)
    return make_logger(m.cfg, m.run_dir, in_pack=True)


def train_members(members: list[Member]) -> None:
    if not members:
        return
    first = members[0].cfg
    set_determinism(first.deterministic)
    if first.threads:
        torch.set_num_threads(first.threads)
    device = pick_device(first.device)
    engine, members = build_engine(members, device)
    if engine is None:
        return
    for i, m in enumerate(members):
        restore(m, i, engine)
        m.data = build_dataset(m.cfg).to(device)  # the metrics' view of the member's data (the engine's is stacked)
        m.suite = MetricSuite(m.cfg, engine.solo_model(i), m.data)
    with ExitStack() as loggers:
        for m in members:
            m.logger = loggers.enter_context(open_logger(m))
        PackLoop(engine, members, device).run()


class PackLoop:
    """The loop of ``run_training`` over the members of one engine."""

    def __init__(self, engine: PackedRun, members: list[Member], device):
        self.engine, self.members, self.device = engine, members, device
        low = min(m.step for m in members)
        first = members[0].cfg
        self.progress = Progress(first.progress, max(m.cfg.steps for m in members), low, first.progress_every_s)
        self.started = time.time()  # wall_time_s counts the loop and its evaluations, not the set-up

    # --- one member ----------------------------------------------------------------------------
    def state(self, i: int) -> dict:
        m = self.members[i]
        m.suite.model = self.engine.solo_model(i)
        return {"step": m.step, **self.engine.member_state(i), "rng": torch.get_rng_state(),
                "wall_time_s": m.wall(self.started), "config": m.config, "hydra_files": m.hydra_files,
                "metrics": m.suite.checkpoint_extras()}

    def metrics(self, i: int) -> dict:
        """The member's metrics, from its solo model: the values a solo run computes from these weights."""
        m = self.members[i]
        model = m.suite.model = self.engine.solo_model(i)
        logits, feats = None, {}
        if any(m.suite.due(group, m.step) for group in FEATURE_GROUPS):
            _, logits, feats = evaluate(model, m.data, m.cfg, features=True)
        return m.suite(m.step, logits, feats)

    def log_eval(self, i: int, values: dict) -> dict | None:
        """Record one evaluation of member i (None when it diverged there)."""
        m = self.members[i]
        rec = {"step": m.step, **values, **self.metrics(i), **self.engine.grad_norms[i]}
        if not math.isfinite(rec["train/loss"]):  # the same status and words as a solo run's
            self.end(i, DIVERGED, f"Diverged: train/loss is {rec['train/loss']} at step {m.step} (lr {m.cfg.optimizer.lr})")
            return None
        m.history.append(rec)
        for key in update_milestones(m.marks, rec, m.cfg.memorize_at, m.cfg.grok_at):
            self.progress.note(f"{m.name}: {MILESTONE_NAMES[key]} at step {m.step}: "
                               f"train {rec['train/acc']:.3f}, val {rec['val/acc']:.3f}")
        m.record.append(rec)
        m.logger.log(rec)
        m.record.write_summary(m.summary(self.started, self.device))
        return rec

    def end(self, i: int, status: str, error: str | None = None) -> None:
        """The member is done: its final summary, and its W&B run finished."""
        m = self.members[i]
        m.status, m.error, m.ended_at = status, error, time.time()
        final = m.summary(self.started, self.device)
        m.record.write_summary(final)
        m.logger.summary(final)
        if status == "completed":
            m.logger.images({p.stem: p for p in sorted((m.record.dir / "analysis").glob("*.png"))})
        m.logger.close(0 if status == "completed" else 1)
        if status == DIVERGED:
            m.failure = FloatingPointError(error)
            self.progress.note(f"{m.name}: {error}; the other runs go on")

    # --- all members ---------------------------------------------------------------------------
    def evaluate(self, idx: list[int]) -> None:
        values = self.engine.evaluate()
        records = [r for r in (self.log_eval(i, values[i]) for i in idx) if r is not None]
        if records:  # the bar shows the weakest member
            shown = {"train/acc": min(r["train/acc"] for r in records), "val/acc": min(r["val/acc"] for r in records),
                     "train/loss": max(r["train/loss"] for r in records)}
            step = min(self.members[i].step for i in idx)
            self.progress.update(step, shown, final=all(not m.running or m.done() for m in self.members))

    def run(self) -> None:
        members = self.members
        fresh = [i for i, m in enumerate(members) if not m.history]
        if fresh:
            self.evaluate(fresh)
        with StopSignals() as signals:
            while True:
                for i, m in enumerate(members):
                    if m.running and m.done():
                        self.end(i, "completed")
                pending = [m.step for m in members if m.running]
                if not pending:
                    break
                movers = [i for i, m in enumerate(members) if m.running and m.step == min(pending)]
                self.step(movers)
                if signals.received is not None:
                    for i, m in enumerate(members):
                        if m.running:
                            self.engine_save(i, snapshot=False)
                            m.record.write_summary({**m.summary(self.started, self.device), "status": "interrupted"})
                    signals.forward()
        self.progress.close()

    def step(self, movers: list[int]) -> None:
        """One optimizer step of ``movers``, then their evaluations and checkpoints."""
        evaluated_next = any(self.members[i].step + 1 in self.members[i].schedule
                             or self.members[i].step + 1 == self.members[i].cfg.steps for i in movers)
        self.engine.step([i in movers for i in range(len(self.members))], grad_norms=evaluated_next)
        due = []
        for i in movers:
            m = self.members[i]
            m.step += 1
            if m.step in m.schedule or m.step == m.cfg.steps:
                due.append(i)
        if due:
            self.evaluate(due)
        for i in movers:
            m = self.members[i]
            if m.running and (m.step % m.cfg.checkpoint_every == 0 or m.done()):
                self.engine_save(i, snapshot=True)

    def engine_save(self, i: int, snapshot: bool) -> None:
        self.members[i].record.save(self.state(i), snapshot=snapshot)
