"""``Run``: everything one training run keeps, whichever engine trains it and beside how many.

A run owns its record (grokking/record.py: metrics.jsonl, summary.json, checkpoints), its
history of evaluations and milestones, its status, its metric suite and logger, and the rules
that end it. The loop (grokking/training/loop.py) only moves runs forward on an engine and asks
each run what to do; so a run trained alone and a run trained in a pack leave the same files.

Status: ``running`` while it trains; then ``completed`` (all steps, or early stop),
``diverged`` (its training loss left the finite numbers: the evaluation that saw it stays in
metrics.jsonl, the summary keeps the last finite values and the step it diverged at),
``interrupted`` (a stop signal: its checkpoint is saved first) or ``failed`` (an error).
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from grokking import schema
from grokking.errors import ConfigError, Diverged
from grokking.loggers import make_logger
from grokking.metrics import MetricSuite
from grokking.milestones import milestones, stops_early
from grokking.milestones import update as update_milestones
from grokking.record import RunRecord, check_same_run
from grokking.schedule import eval_steps
from grokking.training.engines.build import initial_weights
from grokking.training.loss import run_loss

log = logging.getLogger("grokking.train")
MILESTONE_NAMES = {"steps_to_memorize": "memorised", "steps_to_grok": "grokked"}
RUNNING, COMPLETED, DIVERGED, INTERRUPTED, FAILED = "running", "completed", "diverged", "interrupted", "failed"


class Run:
    """One run: ``cfg`` trained in ``run_dir``; ``hydra`` is its job's Hydra config in a pack
    (None for a solo run under Hydra, whose job config is current, and outside Hydra)."""

    def __init__(self, cfg: DictConfig, run_dir: Path, hydra: DictConfig | None = None):
        self.cfg, self.dir, self.hydra = cfg, Path(run_dir), hydra
        self.record = RunRecord(self.dir)
        self.config = schema.plain(cfg)
        self.status = RUNNING
        self.error: str | None = None
        self.outcome = None  # the summary it ended with, or the exception that ended it alone
        self.stored: dict | None = None
        self.step, self.wall_before, self.ended_at = 0, 0.0, None
        self.history: list[dict] = []
        self.marks: dict = {}
        # what the loop asks every step, as plain values: a DictConfig lookup costs tens of
        # microseconds, and a pack of 16 asks 16 runs several times a step
        self.total_steps, self.checkpoint_every = self.config["steps"], self.config["checkpoint_every"]
        self.stopped_early = False  # the last evaluation met early_stop or early_stop_loss
        self.hydra_files: dict = {}
        self.schedule: set[int] = set()
        self.logger = None
        self.suite: MetricSuite | None = None
        self.device, self.started = None, 0.0  # set when it starts; wall_time_s counts from `started`
        self.label = ""  # how progress lines name it: its folder in a pack, nothing alone

    @property
    def running(self) -> bool:
        return self.status == RUNNING

    # --- before training -----------------------------------------------------------------------
    def open(self) -> None:
        """Read the folder's last checkpoint; refuse a folder that holds another run (ConfigError,
        the record left as it was)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self.stored = self.record.load_last()
        if self.stored is not None:
            try:
                check_same_run(self.stored["config"], self.config, self.dir)
            except ConfigError:
                self.record.restore_hydra_files(self.stored.get("hydra_files", {}))
                raise

    def refuse(self, error: Exception) -> None:
        """The run cannot start (a busy folder, another run's folder): its record is untouched."""
        self.status, self.error, self.outcome = FAILED, f"{type(error).__name__}: {error}", error

    def start(self, engine, i: int, labelled: bool) -> None:
        """Put the run's stored state into member ``i`` of ``engine`` (or start its record afresh),
        and open its metric suite and logger."""
        data = engine.datasets[i]
        log.debug("%s on %s: %d training and %d validation examples", self.dir, engine.device,
                  len(data.train_idx), len(data.val_idx))
        if self.stored is not None:
            self.step, self.wall_before = self.stored["step"], self.stored["wall_time_s"]
            engine.load_member_state(i, self.stored)
            self.history = self.record.keep_metrics_until(self.step)
            log.debug("continuing %s from step %d", self.dir, self.step)
        else:
            self.record.keep_metrics_until(-1)
        self.stopped_early = bool(self.history) and stops_early(self.cfg, self.history[-1])
        self.hydra_files = self.stored.get("hydra_files") if self.stored else self.record.hydra_files()
        self.marks = milestones(self.history, self.cfg.memorize_at, self.cfg.grok_at)
        self.schedule = eval_steps(self.cfg)
        self.device = engine.device
        self.suite = MetricSuite(self.cfg, engine.model_of(i), data, loss=run_loss(self.cfg),
                                 initial=initial_weights(self.cfg, data))
        self.label = f"{self.dir.name}: " if labelled else ""
        if self.hydra is not None:  # W&B names the run from the job's Hydra config
            HydraConfig.instance().set_config(self.hydra)
        self.logger = make_logger(self.cfg, self.dir, in_pack=labelled, config=self.config)

    # --- the stop rule and the schedule ----------------------------------------------------------
    def done(self) -> bool:
        """All steps trained, or early stop reached."""
        return self.step >= self.total_steps or self.stopped_early

    def evaluated_at(self, step: int) -> bool:
        return step in self.schedule or step == self.total_steps

    def snapshot_due(self) -> bool:
        return self.step % self.checkpoint_every == 0 or self.done()

    # --- evaluations -----------------------------------------------------------------------------
    def wants_features(self) -> bool:
        return self.suite.wants_features_at(self.step)

    def log_eval(self, model, values: dict, logits, features: dict, grad_norms: dict, progress) -> dict | None:
        """Record one evaluation; None when the run diverged there (it is then ended)."""
        self.suite.model = model
        rec = {"step": self.step, **values, **self.suite(self.step, logits, features), **grad_norms}
        if not math.isfinite(rec["train/loss"]):
            self.record.append(rec)  # the diverged evaluation stays in the record, as the step it happened
            lr = self.cfg.optimizer.lr
            self.end(DIVERGED, Diverged(f"train/loss is {rec['train/loss']} at step {self.step} (lr {lr})", self.step))
            return None
        self.history.append(rec)
        self.stopped_early = stops_early(self.cfg, rec)
        for key in update_milestones(self.marks, rec, self.cfg.memorize_at, self.cfg.grok_at):
            progress.note(f"{self.label}{MILESTONE_NAMES[key]} at step {self.step}: "
                          f"train {rec['train/acc']:.3f}, val {rec['val/acc']:.3f}")
        self.record.append(rec)
        self.logger.log(rec)
        self.record.write_summary(self.summary(time.time()))
        return rec

    # --- the record ------------------------------------------------------------------------------
    def wall(self, now: float) -> float:
        return self.wall_before + (self.ended_at or now) - self.started

    def summary(self, now: float) -> dict:
        out = {"status": self.status, "steps": self.total_steps, **(self.history[-1] if self.history else {}), **self.marks}
        out["step"] = self.step  # a diverged or interrupted run's last evaluation is older than its step
        if self.error:
            out["error"] = self.error
        out.update(wall_time_s=round(self.wall(now), 3), device=str(self.device), run_dir=str(self.dir))
        return out

    def state(self, engine, i: int) -> dict:
        """The checkpoint: member i's training state and everything to continue the record."""
        self.suite.model = engine.model_of(i)
        return {"step": self.step, **engine.member_state(i), "rng": torch.get_rng_state(),
                "wall_time_s": self.wall(time.time()), "config": self.config, "hydra_files": self.hydra_files,
                "metrics": self.suite.checkpoint_extras()}

    def save(self, engine, i: int, snapshot: bool) -> None:
        self.record.save(self.state(engine, i), snapshot=snapshot)

    def interrupt(self, engine, i: int) -> None:
        """A stop signal: the checkpoint of this step, then the summary says so."""
        self.save(engine, i, snapshot=False)
        self.record.write_summary({**self.summary(time.time()), "status": INTERRUPTED})

    # --- the end ---------------------------------------------------------------------------------
    def end(self, status: str, error: Exception | None = None, at: float | None = None) -> None:
        """The run is over: its final summary, its curves and report (a completed run), and its
        W&B run finished. ``error``: what ended it alone (divergence), kept as its outcome; ``at``:
        when its training ended (default now; runs of a pack ending together share it, so that
        none counts another's report in its wall time)."""
        self.status, self.ended_at = status, at or time.time()
        self.error = None if error is None else f"{type(error).__name__}: {error}"
        final = self.summary(self.ended_at)
        self.record.write_summary(final)
        self.logger.summary(final)
        if status == COMPLETED:
            self.logger.curves(self.history, self.marks)
            if self.cfg.report:
                write_report(self.dir, self.logger)
        self.logger.close(0 if status == COMPLETED else 1)
        self.outcome = final if error is None else error

    def fail(self, error: BaseException) -> None:
        """The run stopped on ``error`` before its end (a value that cannot be built; for every
        unfinished run, a signal or a crash of the loop): its last summary says so (where the
        disk has room: then the error raised is the one reported)."""
        status = INTERRUPTED if isinstance(error, (KeyboardInterrupt, SystemExit)) else FAILED
        self.status, self.error, self.outcome = status, f"{type(error).__name__}: {error}", error
        summary = self.record.read_summary()
        summary.update(status=status, error=self.error)
        self.record.write_summary_if_room(summary)


def write_report(run_dir: Path, logger) -> None:
    """report.html at the end of a run (about 6 % of the default run's time), logged to W&B; a
    report that cannot be made costs a warning, never the run."""
    from grokking.report.run import write_run_report  # plotly: only where a report is written

    try:
        logger.html("report", write_run_report(run_dir, progress=False))
    except Exception as e:  # noqa: BLE001 - the run record is complete; the report is a view of it
        log.warning("no report.html for %s: %s: %s", run_dir, type(e).__name__, e)
