"""Experiment loggers: one W&B run per training run, or nothing.

The run folder (metrics.jsonl, summary.json) is the record of a run; W&B only mirrors it.
So any W&B failure (no network, bad key, full disk, wandb missing) is reported once as a
logging warning, and the logger then behaves like a NullLogger for the rest of the run.

Typical use in the training loop::

    with make_logger(cfg, run_dir) as logger:   # closes with exit_code=1 on an exception
        logger.log({"step": 100, "train/loss": 0.3, ...})   # once per evaluation step
        logger.summary({"steps_to_grok": 4200})
        logger.images({"curves": run_dir / "curves.png"})
"""

from __future__ import annotations

import logging
import numbers
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

RUN_ID_FILE = "wandb_run_id.txt"
_pack_runs = set()  # live W&B runs of the members of a pack (grokking/pack): several at once


class NullLogger:
    """Logs nothing. Also usable as a context manager, like WandbLogger."""

    def log(self, record: dict) -> None:
        pass

    def summary(self, values: dict) -> None:
        pass

    def images(self, paths: dict[str, Path]) -> None:
        pass

    def close(self, exit_code: int = 0) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(0 if exc_type is None else 1)


class WandbLogger(NullLogger):
    """Mirrors a run to W&B; degrades to a NullLogger on the first W&B error."""

    def __init__(self, cfg: DictConfig, run_dir: Path, in_pack: bool = False):
        self._run = None
        try:
            self._run = _init_run(cfg, Path(run_dir), in_pack)
        except Exception as e:  # W&B must never stop training
            _warn("init", e)

    def log(self, record: dict) -> None:
        """Log one evaluation as one W&B history row at `record["step"]`.

        Only numbers are logged (lists, strings and None stay in metrics.jsonl). The row is
        committed at once, so a later summary() of the same key is not overwritten by it;
        hence one call per step. Steps below W&B's current step (possible after an online
        resume from an older checkpoint) would be rejected by W&B, so they are skipped.
        """
        step = int(record["step"])
        values = {k: v for k, v in record.items() if k != "step" and isinstance(v, numbers.Number)}
        self._call("log", lambda run: _log_row(run, step, values))

    def summary(self, values: dict) -> None:
        self._call("summary", lambda run: run.summary.update(dict(values)))

    def images(self, paths: dict[str, Path]) -> None:
        """Log the PNGs that exist, in the row after the last logged step."""
        existing = {k: Path(p) for k, p in paths.items() if Path(p).is_file()}
        if existing:
            self._call("images", lambda run: run.log(_wandb_images(existing), commit=False))

    def close(self, exit_code: int = 0) -> None:
        """Finish the run (failed if exit_code != 0) once its files are completely written."""
        self._call("finish", lambda run: _finish(run, exit_code))
        self._run = None

    def _call(self, what: str, fn) -> None:
        if self._run is None:
            return
        try:
            fn(self._run)
        except Exception as e:  # W&B must never stop training
            self._run = None
            _warn(what, e)


def make_logger(cfg: DictConfig, run_dir: Path, in_pack: bool = False) -> NullLogger:
    """The logger chosen by `cfg.logger.name` ("none" or "wandb"); ``in_pack``: the run is one
    of several trained at once in this process, each with its own live W&B run."""
    name = OmegaConf.select(cfg, "logger.name", default="none")
    if name == "wandb" and OmegaConf.select(cfg, "logger.mode") != "disabled":
        return WandbLogger(cfg, run_dir, in_pack)
    if name in ("none", "wandb"):
        return NullLogger()
    raise ValueError(f"unknown logger {name!r}; expected 'none' or 'wandb'")


def _init_run(cfg: DictConfig, run_dir: Path, in_pack: bool = False):
    """Start (or, when run_dir holds a W&B run id, resume) the W&B run of this job."""
    import wandb

    lc = cfg.logger
    wandb_dir = Path(lc.get("dir") or run_dir)
    for folder in (run_dir, wandb_dir):
        folder.mkdir(parents=True, exist_ok=True)
    id_file = run_dir / RUN_ID_FILE
    run_id = id_file.read_text().strip() if id_file.is_file() else None
    auto_group, auto_name = _auto_group_and_name(run_dir)
    run = wandb.init(
        mode=lc.get("mode", "offline"),
        project=lc.get("project", "grokking"),
        entity=lc.get("entity"),
        group=lc.get("group") or auto_group,
        name=lc.get("run_name") or auto_name,
        tags=_tags(cfg),
        notes=lc.get("notes"),
        dir=str(wandb_dir),
        config=_run_config(cfg),
        id=run_id,
        resume="allow" if run_id else None,
        settings=wandb.Settings(
            init_timeout=lc.get("init_timeout", 30),
            finish_timeout=lc.get("finish_timeout", 120),
            # Several jobs in one process (Hydra's basic launcher): a new init ends the last run;
            # the members of a pack run side by side.
            reinit="create_new" if in_pack else "finish_previous",
            # Nothing that probes git or copies code; no stdout capture; no banner.
            disable_git=True,
            save_code=False,
            console="off",
            silent=True,
        ),
    )
    id_file.write_text(run.id)
    if in_pack:
        _pack_runs.add(run)
    return run


def _auto_group_and_name(run_dir: Path) -> tuple[str | None, str]:
    """(group, name): under a Hydra multirun the sweep folder's name and the override string;
    else the folder's name, and a group only for a run in a sweep's folder
    (``<out_dir>/sweeps/<name>/<run>``, e.g. continued with ``resume=<run folder>``), so that its
    resumed W&B run stays in its sweep's group."""
    in_sweep = run_dir.parent.name if run_dir.parent.parent.name == "sweeps" else None
    if not HydraConfig.initialized():
        return in_sweep, run_dir.name
    hc = HydraConfig.get()
    group = Path(hc.sweep.dir).name if hc.mode == RunMode.MULTIRUN else in_sweep
    return group, hc.job.override_dirname or run_dir.name


def _tags(cfg: DictConfig) -> list[str]:
    extra = [OmegaConf.select(cfg, "op.name"), OmegaConf.select(cfg, "model.name")]
    tags = [*cfg.logger.get("tags", []), *(t for t in extra if t is not None)]
    return list(dict.fromkeys(str(t) for t in tags))


def _run_config(cfg: DictConfig) -> dict:
    config = OmegaConf.to_container(cfg, resolve=True)
    config.pop("hydra", None)
    return config


def _log_row(run, step: int, values: dict) -> None:
    if step >= run.step:
        run.log(values, step=step, commit=True)


def _finish(run, exit_code: int) -> None:
    """run.finish(), then wandb.teardown() to wait for the files.

    In wandb 0.31 run.finish() returns before the wandb-core service has written the tail
    of the offline `.wandb` file; teardown waits for the service to end. The next run's
    init starts a new service (about 0.4 s instead of 0.1 s).
    """
    import wandb

    run.finish(exit_code=exit_code)
    _pack_runs.discard(run)
    if not _pack_runs:  # not while other members of a pack still log: teardown would end them
        wandb.teardown()


def _wandb_images(paths: dict[str, Path]) -> dict:
    import wandb

    return {key: wandb.Image(str(path)) for key, path in paths.items()}


def _warn(what: str, error: Exception) -> None:
    first_line = next(iter(str(error).strip().splitlines()), "")
    log.warning(
        "W&B disabled for this run: %s failed (%s: %s); training and its local record go on.",
        what, type(error).__name__, first_line,
    )
