"""Experiment loggers: one W&B run per training run, or nothing.

The run folder (metrics.jsonl, summary.json) is the record of a run; W&B only mirrors it.
So any W&B failure (no network, bad key, full disk, wandb missing) is reported once as a
logging warning, and the logger then behaves like a NullLogger for the rest of the run.

Typical use in the training loop::

    with make_logger(cfg, run_dir) as logger:   # closes with exit_code=1 on an exception
        logger.log({"step": 100, "train/loss": 0.3, ...})   # once per evaluation step
        logger.summary({"steps_to_grok": 4200})
        logger.curves(history, marks)            # a figure of this run's accuracy and loss
        logger.html("report", run_dir / "report.html")

Settings left unset (null) in conf/logger/wandb.yaml are W&B's own: its WANDB_* environment
variables apply, and where those are unset too, our defaults (see `_init_args`).
"""

from __future__ import annotations

import logging
import numbers
import os
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

RUN_ID_FILE = "wandb_run_id.txt"
CURVES_FILE = "wandb_curves.png"  # the figure of curves() in the run folder
STEP = "step"  # the x-axis of every W&B metric: the training step (as in metrics.jsonl)
# metrics whose W&B summary is their best value as well as their last: {"max": .., "last": ..}
BEST = {"train/acc": "max", "val/acc": "max", "train/loss": "min", "val/loss": "min"}
_pack_runs = set()  # live W&B runs of the members of a pack (grokking/pack): several at once


class NullLogger:
    """Logs nothing. Also usable as a context manager, like WandbLogger."""

    def log(self, record: dict) -> None:
        pass

    def summary(self, values: dict) -> None:
        pass

    def images(self, paths: dict[str, Path]) -> None:
        pass

    def html(self, name: str, path: Path) -> None:
        pass

    def curves(self, history: list[dict], marks: dict) -> None:
        pass

    def close(self, exit_code: int = 0) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(0 if exc_type is None else 1)


class WandbLogger(NullLogger):
    """Mirrors a run to W&B; degrades to a NullLogger on the first W&B error."""

    def __init__(self, cfg: DictConfig, run_dir: Path, in_pack: bool = False, config: dict | None = None):
        self._run, self._run_dir = None, Path(run_dir)
        try:
            self._run = _init_run(cfg, self._run_dir, in_pack, config)
            # the start of this run by the file system's clock, to which files it writes are compared
            self._started = (self._run_dir / RUN_ID_FILE).stat().st_mtime
        except Exception as e:  # W&B must never stop training
            self._run = None
            _warn("init", e)

    def log(self, record: dict) -> None:
        """Log one evaluation as one W&B history row at `record["step"]`.

        Only numbers are logged (lists, strings and None stay in metrics.jsonl), `step` among
        them: it is every metric's x-axis (define_metric in _init_run). The row is
        committed at once, so a later summary() of the same key is not overwritten by it;
        hence one call per step. Steps below W&B's current step (possible after an online
        resume from an older checkpoint) would be rejected by W&B, so they are skipped.
        """
        step = int(record["step"])
        values = {k: v for k, v in record.items() if isinstance(v, numbers.Number)}
        self._call("log", lambda run: _log_row(run, step, values))

    def summary(self, values: dict) -> None:
        """Put values (summary.json) into the W&B summary, except those of the BEST metrics:
        W&B keeps {"max" or "min": .., "last": ..} of their history there (summary_values undoes it)."""
        plain = {k: v for k, v in values.items() if k not in BEST}
        self._call("summary", lambda run: run.summary.update(plain))

    def images(self, paths: dict[str, Path]) -> None:
        """Log the PNGs made during this run, in the row after the last logged step."""
        fresh = {k: Path(p) for k, p in paths.items() if self._made_by_this_run(Path(p))}
        if fresh:
            self._call("images", lambda run: run.log(_wandb_images(fresh), commit=False))

    def html(self, name: str, path: Path) -> None:
        """Log an HTML file made during this run (e.g. its report) as it is, without W&B's stylesheet.
        Only what the file holds is shown: images must be inside it (data: URIs), not links."""
        if self._made_by_this_run(Path(path)):
            self._call("html", lambda run: run.log({name: _wandb_html(Path(path))}, commit=False))

    def curves(self, history: list[dict], marks: dict) -> None:
        """Draw this run's train/val accuracy and loss over all its evaluations (history: the
        metrics.jsonl records; marks: its milestones) into CURVES_FILE and log it as "curves"."""
        self._call("curves", lambda run: run.log(
            _wandb_images({"curves": _draw_curves(history, marks, self._run_dir / CURVES_FILE)}),
            commit=False))

    def close(self, exit_code: int = 0) -> None:
        """Finish the run (failed if exit_code != 0) once its files are completely written."""
        self._call("finish", lambda run: _finish(run, exit_code))
        self._run = None

    def _made_by_this_run(self, path: Path) -> bool:
        """Whether path is a file written since this run started (when it wrote its run-id file),
        so that a continued run does not log what an earlier one or an analysis left in its folder."""
        if self._run is None or not path.is_file():
            return False
        if path.stat().st_mtime >= self._started:
            return True
        log.warning("W&B: not logging %s: it is older than this run.", path)
        return False

    def _call(self, what: str, fn) -> None:
        if self._run is None:
            return
        try:
            fn(self._run)
        except Exception as e:  # W&B must never stop training
            self._run = None
            _warn(what, e)


def make_logger(cfg: DictConfig, run_dir: Path, in_pack: bool = False, config: dict | None = None) -> NullLogger:
    """The logger chosen by `cfg.logger.name` ("none" or "wandb"); a NullLogger, which writes
    nothing, where W&B's mode is "disabled" (logger.mode, else WANDB_MODE). ``in_pack``: the run
    is one of several trained at once in this process, each with its own live W&B run.
    ``config``: the run's config as its checkpoints store it (default: ``cfg`` resolved now);
    passing it keeps time-stamped values such as ``sweep_name`` the same in W&B and on disk."""
    name = OmegaConf.select(cfg, "logger.name", default="none")
    if name == "wandb" and _mode(cfg.logger) != "disabled":
        return WandbLogger(cfg, run_dir, in_pack, config)
    if name in ("none", "wandb"):
        return NullLogger()
    raise ValueError(f"unknown logger {name!r}; expected 'none' or 'wandb'")


# wandb.init argument: (its key in conf/logger/wandb.yaml, W&B's environment variable for it)
_SETTINGS = {
    "project": ("project", "WANDB_PROJECT"),
    "entity": ("entity", "WANDB_ENTITY"),
    "dir": ("dir", "WANDB_DIR"),
    "group": ("group", "WANDB_RUN_GROUP"),
    "name": ("run_name", "WANDB_NAME"),
    "notes": ("notes", "WANDB_NOTES"),
}


def _mode(lc: DictConfig) -> str:
    """W&B's mode: logger.mode, else WANDB_MODE, else offline (compute nodes often have no network)."""
    mode = lc.get("mode") or os.environ.get("WANDB_MODE") or "offline"
    return str(mode)  # a plain string: the schema gives a Choice


def _init_args(lc: DictConfig, run_dir: Path) -> dict:
    """mode and the _SETTINGS arguments of wandb.init: the config's value where set; none where
    W&B's environment variable is set (W&B applies it); else our default: project "grokking",
    W&B's files in the run folder, the group and name of _auto_group_and_name."""
    group, name = _auto_group_and_name(run_dir)
    ours = {"project": "grokking", "dir": str(run_dir), "group": group, "name": name}
    args = {"mode": _mode(lc)}
    for arg, (key, env_var) in _SETTINGS.items():
        value = lc.get(key)
        if value is None and not os.environ.get(env_var):
            value = ours.get(arg)
        if value is not None:
            args[arg] = str(value)
    return args


def _init_run(cfg: DictConfig, run_dir: Path, in_pack: bool = False, config: dict | None = None):
    """Start (or, when run_dir holds a W&B run id, resume) the W&B run of this job, with the
    training step as every metric's x-axis and the BEST summaries."""
    import wandb

    args = _init_args(cfg.logger, run_dir)
    for folder in (run_dir, Path(args.get("dir", run_dir))):
        folder.mkdir(parents=True, exist_ok=True)
    id_file = run_dir / RUN_ID_FILE
    run_id = id_file.read_text().strip() if id_file.is_file() else None
    lc = cfg.logger
    run = wandb.init(
        **args,
        tags=_tags(cfg),
        config=_run_config(cfg) if config is None else config,
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
    run.define_metric(STEP)
    run.define_metric("*", step_metric=STEP)
    for key, best in BEST.items():
        run.define_metric(key, step_metric=STEP, summary=f"{best},last")
    if in_pack:
        _pack_runs.add(run)
    return run


def summary_values(wandb_summary: dict) -> dict:
    """A W&B summary written by WandbLogger as summary.json's values: the BEST metrics' last value."""
    return {k: v["last"] if k in BEST and isinstance(v, dict) else v for k, v in wandb_summary.items()}


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


def _wandb_html(path: Path):
    import wandb

    return wandb.Html(path.read_text(encoding="utf-8"), inject=False, data_is_not_path=True)


def _draw_curves(history: list[dict], marks: dict, path: Path) -> Path:
    from grokking.plots import plot_curves, save  # matplotlib: only where curves are drawn

    save(plot_curves(history, marks), path)
    return path


def _warn(what: str, error: Exception) -> None:
    first_line = next(iter(str(error).strip().splitlines()), "")
    log.warning(
        "W&B disabled for this run: %s failed (%s: %s); training and its local record go on.",
        what, type(error).__name__, first_line,
    )
