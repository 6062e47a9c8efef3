"""Training entrypoint: ``python -m grokking.train [key=value ...]`` (Hydra overrides).

compose config -> data, model, optimizer on the device -> training loop -> run record.
The loop is ``run_training``; ``main`` wraps it for Hydra and turns known bad input into a
one-line error. ``train(cfg, run_dir)`` runs without Hydra (tests, notebooks).
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import torch
import torch.nn.functional as F
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from grokking import schema
from grokking.config import CONF_DIR, check_command_line, check_resumable, quote_path_overrides
from grokking.data import build_dataset
from grokking.errors import ConfigError, Diverged
from grokking.loggers import make_logger
from grokking.metrics import MetricSuite
from grokking.metrics.norms import grad_norms
from grokking.milestones import milestones
from grokking.milestones import update as update_milestones
from grokking.models import build_model
from grokking.objective import scored
from grokking.optim import build_grad_filter, build_optimizer, set_warmup_lr
from grokking.preemption import StopSignals
from grokking.progress import Progress
from grokking.record import NoSpace, RunRecord, check_same_run
from grokking.runlock import one_process_per_run
from grokking.schedule import eval_steps

MILESTONE_NAMES = {"steps_to_memorize": "memorised", "steps_to_grok": "grokked"}
log = logging.getLogger("grokking.train")  # also when run as __main__


@dataclass
class Batches:
    """Minibatch indices: a new permutation of the training set each epoch from a seeded CPU
    generator (the same batches on every device), moved to the device once per epoch. Its state
    travels in the checkpoint, so a resumed run draws the same batches."""

    n: int
    size: int
    device: torch.device
    generator: torch.Generator = field(default_factory=torch.Generator)
    order: torch.Tensor | None = None
    pos: int = 0

    def next(self) -> torch.Tensor:
        if self.order is None or self.pos >= self.n:
            self.order, self.pos = torch.randperm(self.n, generator=self.generator).to(self.device), 0
        batch = self.order[self.pos : self.pos + self.size]
        self.pos += self.size
        return batch

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": self.order, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order = None if state["order"] is None else state["order"].to(self.device)
        self.pos = state["pos"]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name} but no CUDA device is visible; allowed here: auto, cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device={name} is not a device; allowed: auto, cpu, cuda, cuda:N") from None


def set_determinism(on: bool) -> None:
    """Same config, seed and device give the same numbers (deterministic cuBLAS needs the
    workspace setting before CUDA starts)."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch.backends.cudnn.benchmark = not on


def per_example_loss(logits, labels, kind: str, dtype: str) -> torch.Tensor:
    logits = logits.to(getattr(torch, dtype))
    if kind == "ce":
        return F.cross_entropy(logits, labels, reduction="none")
    targets = F.one_hot(labels, logits.shape[-1]).to(logits.dtype)
    return (logits - targets).pow(2).mean(dim=-1)


EVAL_ROWS_CPU = 512  # rows per chunk of an evaluation on a CPU (docs/performance.md)


@torch.no_grad()
def evaluate(model, data, cfg, features: bool):
    """Loss and accuracy of both splits from one forward pass over every example. On a CPU the
    pass goes in chunks of rows, whose activations stay in cache (20-35 % less time, the same
    numbers); a GPU takes all rows at once."""
    rows = EVAL_ROWS_CPU if data.inputs.device.type == "cpu" else len(data.inputs)
    outs = [model(chunk, features=features) for chunk in data.inputs.split(rows)]
    if features:
        logits = torch.cat([out[0] for out in outs])
        feats = {key: torch.cat([out[1][key] for out in outs]) for key in outs[0][1]}
    else:
        logits, feats = torch.cat(outs), {}
    losses = per_example_loss(logits, data.labels, cfg.loss, cfg.loss_dtype).float()
    correct = (logits.argmax(dim=-1) == data.labels).float()
    values = [x[idx].mean() for idx in (data.train_idx, data.val_idx) for x in (losses, correct)]
    train_loss, train_acc, val_loss, val_acc = torch.stack(values).tolist()
    record = {"train/loss": train_loss, "train/acc": train_acc, "val/loss": val_loss, "val/acc": val_acc}
    return record, logits, feats


def load_weights(model, source: str) -> None:
    """``init_from``: a checkpoint file or a run folder (its checkpoints/last.pt)."""
    path = Path(source)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if not path.is_file():
        raise ConfigError(f"init_from={source}: no checkpoint there (give a .pt file or a run folder)")
    state = torch.load(path, map_location="cpu", weights_only=False)["model"]
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise ConfigError(f"init_from={source} does not fit this model: {first}") from None


@one_process_per_run  # a second process on run_dir is refused (grokking/runlock.py)
def train(cfg: DictConfig, run_dir: Path) -> dict:
    """Train (or continue) the run in ``run_dir`` and return its summary."""
    run_dir.mkdir(parents=True, exist_ok=True)
    record = RunRecord(run_dir)
    schema.check_ranges(cfg)
    config = schema.plain(cfg)
    stored = record.load_last()
    if stored is not None:
        try:
            check_same_run(stored["config"], config, run_dir)
        except ConfigError:
            record.restore_hydra_files(stored.get("hydra_files", {}))
            raise
    try:
        with make_logger(cfg, run_dir) as logger:
            return run_training(cfg, config, record, stored, logger)
    except BaseException as e:
        status = {Diverged: "diverged", KeyboardInterrupt: "interrupted", SystemExit: "interrupted"}.get(type(e), "failed")
        summary = record.read_summary()
        summary.update(status=status, error=f"{type(e).__name__}: {e}")
        if isinstance(e, Diverged):
            summary["step"] = e.step
        record.write_summary_if_room(summary)
        raise


def run_training(cfg, config: dict, record: RunRecord, stored: dict | None, logger) -> dict:
    set_determinism(cfg.deterministic)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = pick_device(cfg.device)
    data = build_dataset(cfg).to(device)
    log.debug("%s on %s: %d training and %d validation examples", record.dir, device, len(data.train_idx), len(data.val_idx))
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, data)
    if cfg.init_from and stored is None:
        load_weights(model, cfg.init_from)
    model.to(device)
    optimizer = build_optimizer(cfg.optimizer, model.parameters())
    grad_filter = build_grad_filter(cfg.grokfast, model.parameters())
    batches = Batches(len(data.train_idx), cfg.batch_size or len(data.train_idx), device)
    batches.generator.manual_seed(cfg.seed)
    metrics = MetricSuite(cfg, model, data)

    step, wall_before, history = 0, 0.0, []
    if stored is not None:
        step, wall_before = stored["step"], stored["wall_time_s"]
        model.load_state_dict(stored["model"])
        optimizer.load_state_dict(stored["optimizer"])
        if grad_filter:
            grad_filter.load_state_dict(stored["grad_filter"])
        batches.load_state_dict(stored["batches"])
        torch.set_rng_state(stored["rng"])
        history = record.keep_metrics_until(step)
        log.debug("continuing %s from step %d", record.dir, step)
    else:
        record.keep_metrics_until(-1)
    hydra_files = stored.get("hydra_files") if stored else record.hydra_files()
    marks = milestones(history, cfg.memorize_at, cfg.grok_at)

    def state() -> dict:
        return {
            "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "grad_filter": grad_filter.state_dict() if grad_filter else None,
            "batches": batches.state_dict(), "rng": torch.get_rng_state(),
            "wall_time_s": wall_before + time.time() - started, "config": config, "hydra_files": hydra_files,
            "metrics": metrics.checkpoint_extras(),
        }

    def summary(status: str) -> dict:
        wall = wall_before + time.time() - started
        out = {"status": status, "step": step, "steps": cfg.steps, **(history[-1] if history else {}), **marks}
        out.update(wall_time_s=round(wall, 3), device=str(device), run_dir=str(record.dir))
        return out

    def log_eval() -> dict:
        rec, logits, feats = evaluate(model, data, cfg, features=metrics.wants_features_at(step))
        rec = {"step": step, **rec, **metrics(step, logits, feats), **last_grad_norms}
        if not math.isfinite(rec["train/loss"]):
            record.append(rec)  # the diverged evaluation stays in the record, as the step it happened
            raise Diverged(f"train/loss is {rec['train/loss']} at step {step} (lr {cfg.optimizer.lr})", step)
        history.append(rec)
        for key in update_milestones(marks, rec, cfg.memorize_at, cfg.grok_at):
            progress.note(f"{MILESTONE_NAMES[key]} at step {step}: train {rec['train/acc']:.3f}, val {rec['val/acc']:.3f}")
        record.append(rec)
        logger.log(rec)
        record.write_summary(summary("running"))
        return rec

    # plain values for the hot loop: a DictConfig lookup costs tens of microseconds
    steps, checkpoint_every, early_stop = cfg.steps, cfg.checkpoint_every, cfg.early_stop
    loss_kind, loss_dtype, warmup = cfg.loss, cfg.loss_dtype, OmegaConf.to_container(cfg.optimizer, resolve=True)

    def done() -> bool:
        last = history[-1] if history else {}
        grokked = early_stop is not None and (last.get("val/acc") or 0) >= early_stop
        return step >= steps or grokked

    x_train, y_train = data.inputs[data.train_idx], data.labels[data.train_idx]
    forward = torch.compile(model) if cfg.compile else model
    full_batch = cfg.batch_size is None or cfg.batch_size >= len(data.train_idx)
    schedule = eval_steps(cfg)
    progress = Progress(cfg.progress, cfg.steps, step, cfg.progress_every_s)
    last_grad_norms: dict = {}  # of the step before an evaluation, logged with it
    started = time.time()  # wall_time_s counts the loop and its evaluations, not the set-up
    if not history:
        progress.update(step, log_eval())
    with StopSignals() as signals:
        while not done():
            set_warmup_lr(optimizer, warmup, step)
            if full_batch:
                x, y = x_train, y_train
            else:
                idx = batches.next()
                x, y = x_train[idx], y_train[idx]
            loss = per_example_loss(forward(x), y, loss_kind, loss_dtype).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if step + 1 in schedule or step + 1 == steps:  # the next step is evaluated
                last_grad_norms = grad_norms(model)
            if grad_filter:
                grad_filter.apply()
            optimizer.step()
            step += 1
            if step in schedule or step == steps:
                progress.update(step, log_eval(), final=step == steps)
            if step % checkpoint_every == 0 or done():
                record.save(state(), snapshot=True)
            if signals.received is not None:
                log.info("signal %d at step %d: checkpoint saved, stopping", signals.received, step)
                record.save(state(), snapshot=False)
                record.write_summary(summary("interrupted"))
                signals.forward()
    progress.close()
    final = summary("completed")
    record.write_summary(final)
    logger.summary(final)
    logger.curves(history, marks)
    if cfg.report:
        write_report(record.dir, logger)
    return final


def write_report(run_dir: Path, logger) -> None:
    """report.html at the end of a run (about 6 % of the default run's time), logged to W&B; a
    report that cannot be made costs a warning, never the run."""
    from grokking.report.run import write_run_report  # plotly: only where a report is written

    try:
        logger.html("report", write_run_report(run_dir, progress=False))
    except Exception as e:  # noqa: BLE001 - the run record is complete; the report is a view of it
        log.warning("no report.html for %s: %s: %s", run_dir, type(e).__name__, e)


def resume_config(cfg: DictConfig, run_dir: Path) -> DictConfig:
    """``resume=<folder>``: that run's stored config, with the keys that may change when a run
    continues (steps, device, logger, ...) taken from the command line where given there."""
    check_resumable(cfg.resume)
    record = RunRecord(run_dir)
    stored = record.load_last()
    record.restore_hydra_files(stored.get("hydra_files", {}))  # Hydra just wrote this launch's
    merged = OmegaConf.create(stored["config"])
    given = {o.lstrip("+~").split("=")[0].split(".")[0] for o in HydraConfig.get().overrides.task}
    for key in given & set(schema.runtime_keys()):
        merged[key] = cfg[key]
    return merged


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict | float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        if cfg.resume:
            cfg = resume_config(cfg, run_dir)
        return scored(cfg, train(cfg, run_dir))
    except (ConfigError, Diverged, NoSpace) as e:
        report(e)
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(EXIT_CODES[type(e)])
        if isinstance(e, Diverged):  # an outcome of a grid point (a search scores its penalty)
            return scored(cfg, RunRecord(run_dir).read_summary())
        raise  # jobs of a grid may share this process: let Hydra record the failure and go on


EXIT_CODES = {ConfigError: 2, NoSpace: 2, Diverged: 3}


def report(error: Exception) -> None:
    """One line on stderr: ``grokking: error: ...`` for bad input, ``grokking: diverged: ...``."""
    kind = "diverged" if isinstance(error, Diverged) else "error"
    print(f"grokking: {kind}: {error}", file=sys.stderr)


def cli() -> None:
    """``python -m grokking.train`` and the ``grokking-train`` console script."""
    sys.argv = quote_path_overrides(sys.argv)
    try:
        check_command_line(sys.argv[1:])
    except ConfigError as e:
        report(e)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli()
