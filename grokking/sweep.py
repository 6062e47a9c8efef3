"""What every launcher of a ``-m`` grid shares: the submitit executor of Hydra's launcher
parameters, a task function that submitit can name, the runs a grid launched again need not
train, and the sweep's table and summary.

A run whose folder says it ended for good (completed with at least the steps asked for, or
reached its early stop; or diverged, which it would again) is not launched again: its job's
result is read from its folder, and its files (report, W&B run) stay as they are. Every other
run of the grid is launched: a new one starts, an unfinished one continues exactly from its
checkpoint, a finished one asked for more steps is extended.

The table lists where each run lives (job id, status, step, last val/acc, run folder, error) and
is written to ``<sweep dir>/sweep_summary.json``; ``python -m grokking.launcher <sweep dir>``
prints it again from the run folders alone.
"""
from __future__ import annotations

import copy
import importlib
import json
import os
import sys
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import DictConfig, OmegaConf, open_dict

from grokking.milestones import stops_early
from grokking.objective import scored

SUMMARY = "sweep_summary.json"


class RunsFailed(CompactHydraException):
    """Raised (through Hydra's sweeper) after the summary when some runs of the grid failed;
    Hydra prints its message without a traceback and exits with status 1."""


class NoSlurm(CompactHydraException):
    """launcher=slurm on a machine without SLURM: one line instead of submitit's traceback."""


def executor(launcher):
    """The submitit executor with the launcher's parameters, as Hydra's launcher builds it."""
    import submitit

    kind, params = launcher._EXECUTOR, dict(launcher.params)
    if kind == "slurm" and submitit.SlurmExecutor.affinity() <= 0:
        raise NoSlurm("grokking: error: launcher=slurm needs SLURM, but srun is not on PATH here; "
                      "on this machine run the grid with launcher=local")
    init = {"folder": params.pop("submitit_folder")}
    if "max_num_timeout" in params:
        init[f"{kind}_max_num_timeout"] = params.pop("max_num_timeout")
    executor = submitit.AutoExecutor(cluster=kind, **init)
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"{kind}_{k}": v for k, v in params.items()})
    return executor


class MainTask:
    """The task function of a script run as ``python -m package.module``, by name.

    There the function lives in ``__main__``, so cloudpickle would copy it by value with its
    globals (torch's modules do not pickle) instead of naming it; this stands in for it and looks
    up the undecorated function (``__wrapped__`` of ``@hydra.main``) in the job's process.
    """

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, cfg):
        fn = getattr(importlib.import_module(self.module), self.name)
        return getattr(fn, "__wrapped__", fn)(cfg)


def importable(task_function):
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if getattr(task_function, "__module__", None) == "__main__" and spec is not None:
        return MainTask(spec.name, task_function.__name__)
    return task_function


def last_line(text: str | None) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("grokking: error:") or "Error:" in ln]
    return (errors or lines or [""])[-1]


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def compose_once(config_loader) -> None:
    """Make ``config_loader`` compose each job's config once. Hydra's sweeper composes every job
    to check the batch and throws the result away; the launcher's plan then composes it again,
    about 0.2 s a job. The loader keeps each composition after its first use, handing out a copy
    (a tenth of a composition), and gives the kept one away at the second use, so the plan
    reuses the sweeper's and nothing stays for the life of the driver (a third use composes
    afresh)."""
    compose = config_loader.load_sweep_config
    if getattr(compose, "composes_once", False):
        return
    kept: dict[tuple, DictConfig] = {}

    def load_sweep_config(master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        key = (id(master_config), tuple(sweep_overrides))
        if key in kept:
            return kept.pop(key)
        kept[key] = compose(master_config, list(sweep_overrides))
        return copy.deepcopy(kept[key])

    load_sweep_config.composes_once = True
    config_loader.load_sweep_config = load_sweep_config


def sweep_configs(launcher, job_overrides, nums: list[int]) -> list[DictConfig]:
    """Each job's config as run_job will compose it (with its job number)."""
    configs = []
    for overrides, num in zip(job_overrides, nums):
        cfg = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
        with open_dict(cfg):
            cfg.hydra.job.id = cfg.hydra.job.num = num
        configs.append(cfg)
    return configs


def job_run_dir(cfg: DictConfig) -> Path:
    """The folder run_job gives a job: hydra.sweep.dir / hydra.sweep.subdir of its config."""
    return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)


def ended_for_good(cfg: DictConfig, run_dir: Path) -> dict | None:
    """The summary of a run that launching again would not change (see the module's docstring);
    None for a run to launch."""
    summary = read_json(Path(run_dir) / "summary.json")
    if summary.get("status") == "diverged":
        return summary
    all_steps = (summary.get("step") or 0) >= cfg.steps
    return summary if summary.get("status") == "completed" and (all_steps or stops_early(cfg, summary)) else None


def ended_jobs(configs: list[DictConfig], job_overrides) -> dict[int, JobReturn]:
    """{job index: its result, read from its folder} of the jobs whose runs ended for good."""
    done = {}
    for i, (cfg, overrides) in enumerate(zip(configs, job_overrides)):
        run_dir = job_run_dir(cfg)
        summary = ended_for_good(cfg, run_dir)
        if summary is not None:
            done[i] = JobReturn(overrides=list(overrides), cfg=cfg, working_dir=str(run_dir),
                                status=JobStatus.COMPLETED, _return_value=scored(cfg, summary))
    if done:
        print(f"[grokking] {len(done)} of {len(configs)} run(s) of {Path(str(configs[0].hydra.sweep.dir))} ended "
              "before: not launched again", flush=True)
    return done


def study_page(config: DictConfig) -> None:
    """A study's grid ends with its page (grokking/study), whatever became of its runs."""
    if OmegaConf.select(config, "study") is not None:
        from grokking.study.page import after_grid  # plotly: only for a study

        after_grid(config)


def run_row(run_dir: Path) -> dict:
    """What a run folder says about its run (summary.json), for the table."""
    s = read_json(Path(run_dir) / "summary.json")
    return {"run_dir": str(run_dir), "status": s.get("status", "missing"), "step": s.get("step"),
            "steps": s.get("steps"), "val/acc": s.get("val/acc"),
            "error": s.get("error") if s.get("status") != "completed" else None}


def format_table(rows: list[dict]) -> str:
    def fmt(row: dict) -> list[str]:
        acc = row.get("val/acc")
        step = "" if row.get("step") is None else f"{row['step']}/{row.get('steps') or '?'}"
        run_dir = row["run_dir"]
        if not os.path.isabs(run_dir) or run_dir.startswith(os.getcwd() + os.sep):
            run_dir = os.path.relpath(run_dir)
        return [str(row.get("job_id") or ""), row["status"], step, "" if acc is None else f"{acc:.3f}",
                run_dir, (row.get("error") or "")[:200]]

    table = [["job", "status", "step", "val/acc", "run folder", "error"]] + [fmt(r) for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in table).rstrip()


def write_summary(sweep_dir: Path, rows: list[dict]) -> Path:
    """Merge ``rows`` (keyed by job number) into ``<sweep_dir>/sweep_summary.json``: a sweep run in
    batches (hydra.sweeper.max_batch_size) or launched again in the same folder updates its rows."""
    path = Path(sweep_dir) / SUMMARY
    old = {r["num"]: r for r in read_json(path).get("runs", [])}
    old.update({r["num"]: r for r in rows})
    runs = [old[k] for k in sorted(old)]
    counts = {s: sum(r["status"] == s for r in runs) for s in sorted({r["status"] for r in runs})}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"sweep_dir": str(sweep_dir), "counts": counts, "runs": runs}, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def report_sweep(sweep_dir: Path, rows: list[dict], returns: list[JobReturn]) -> list[JobReturn]:
    """Write sweep_summary.json and print the table; the jobs that neither completed nor diverged
    return one short RunsFailed (Hydra then exits non-zero without a traceback)."""
    path = write_summary(sweep_dir, rows)
    failed = [r for r in rows if r["status"] not in ("completed", "diverged")]
    print(f"\n[grokking] sweep {sweep_dir}: {len(rows) - len(failed)} of {len(rows)} runs completed"
          f"\n{format_table(rows)}", flush=True)
    for r in failed:
        if r.get("stderr"):
            print(f"[grokking] {r['status']}: {r['run_dir']}\n    logs: {r['stderr']}", flush=True)
    print(f"[grokking] summary: {path}", flush=True)
    if failed:
        error = RunsFailed(f"{len(failed)} of {len(rows)} runs failed (see the table above and {path}); "
                           f"first: {failed[0]['run_dir']}: {failed[0]['error']}")
        for ret in returns:
            if ret.status != JobStatus.COMPLETED:
                ret.return_value = error
    return returns
