"""Launchers of ``-m`` grids through submitit (``launcher=slurm`` / ``launcher=local``) and the
sweep summary they leave behind. (Hydra only takes launchers from the ``hydra_plugins`` package:
the classes named in conf/launcher/*.yaml are in hydra_plugins/grokking_launcher/launchers.py and
add ``ReportingMixin`` below to Hydra's submitit launchers.)

They are Hydra's submitit launchers with one change: the grid is collected without stopping at
the first failed run. Every run of the job array goes on; when all are done the launcher prints
a table of where each run lives (job id, status, last val/acc, run folder, error) and writes it
to ``<sweep dir>/sweep_summary.json``. If a run failed, the command then exits non-zero.

Requeue needs nothing here: on SIGUSR2 the training loop saves ``checkpoints/last.pt`` and hands
the signal to submitit, which calls the launcher's ``checkpoint()`` (resubmit the same call) and
requeues the job; the requeued job finds its run folder (named from its overrides) and resumes.

``python -m grokking.launcher <sweep dir>`` prints the same table from the run folders alone,
e.g. while the grid runs or after the submitting shell is gone.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.errors import CompactHydraException
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from omegaconf import OmegaConf

SUMMARY = "sweep_summary.json"


class RunsFailed(CompactHydraException):
    """Raised (through Hydra's sweeper) after the summary when some runs of the grid failed;
    Hydra prints its message without a traceback and exits with status 1."""


class NoSlurm(CompactHydraException):
    """launcher=slurm on a machine without SLURM: one line instead of submitit's traceback."""


def _executor(launcher):
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


def _last_line(text: str | None) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("grokking: error:") or "Error:" in ln]
    return (errors or lines or [""])[-1]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def run_row(run_dir: Path) -> dict:
    """What a run folder says about its run (summary.json), for the table."""
    s = _read_json(Path(run_dir) / "summary.json")
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
    old = {r["num"]: r for r in _read_json(path).get("runs", [])}
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


class ReportingMixin:
    """Put before a hydra_submitit_launcher launcher class: replaces its ``launch``."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None and job_overrides
        from grokking.pack.launch import launch_submitit  # pack=N: one array task per pack

        packed = launch_submitit(self, job_overrides, initial_job_idx)
        if packed is not None:
            return packed
        executor = _executor(self)
        self.task_function = importable(self.task_function)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)

        nums = [initial_job_idx + i for i in range(len(job_overrides))]
        params = [(list(o), "hydra.sweep.dir", n, f"job_id_for_{n}", Singleton.get_state())
                  for n, o in zip(nums, job_overrides)]
        jobs = executor.map_array(self, *zip(*params))

        where = (f"SLURM job {jobs[0].job_id.split('_')[0]}" if self._EXECUTOR == "slurm"
                 else "local processes")
        print(f"[grokking] submitted {len(jobs)} run(s) of {sweep_dir} as {where}; waiting for all of them\n"
              f"[grokking] stopping this command does not stop the jobs; see how they do with\n"
              f"[grokking]   python -m grokking.launcher {sweep_dir}", flush=True)
        run_dirs = [self._run_dir(list(o)) for o in job_overrides]

        for job in jobs:
            job.wait()
        # A job that died leaves no result file; submitit waits 15 s for one (slow shared file
        # systems) at each such job: wait those 15 s once for the whole grid instead.
        deadline = time.time() + type(jobs[0])._results_timeout_s
        rows, returns = [], []
        for num, overrides, run_dir, job in zip(nums, job_overrides, run_dirs, jobs):
            job._results_timeout_s = max(0.0, deadline - time.time())
            ret, error = self._collect(job, list(overrides))
            row = {"num": num, "job_id": job.job_id, "overrides": " ".join(filter_overrides(overrides)),
                   **run_row(run_dir), "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr)}
            if ret.status == JobStatus.COMPLETED:  # a diverged run is an outcome, not a failure
                row.update(status="diverged" if row["status"] == "diverged" else "completed")
            else:  # the run record says "interrupted" after too many time-outs, or "diverged"
                row.update(status=row["status"] if row["status"] in ("interrupted", "diverged") else "failed",
                           error=error or row["error"])
            rows.append(row)
            returns.append(ret)

        return report_sweep(sweep_dir, rows, returns)

    def _run_dir(self, overrides: list[str]) -> Path:
        """The folder run_job will use: hydra.sweep.dir / hydra.sweep.subdir of the job's config."""
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)

    @staticmethod
    def _collect(job, overrides: list[str]) -> tuple[JobReturn, str | None]:
        """Wait for ``job``; its JobReturn, or a failed one with the error of a job that died."""
        try:
            ret = job.results()[0]
        except Exception as e:  # the process died (sys.exit, kill, time limit, ...): no JobReturn
            ret = JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=e)
            return ret, _last_line(job.stderr()) or _last_line(str(e))
        if ret.status == JobStatus.COMPLETED:
            return ret, None
        e = ret._return_value
        return ret, f"{type(e).__name__}: {e}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: python -m grokking.launcher <sweep dir>   (status of each run of a -m grid)")
        return 2
    sweep_dir = Path(args[0])
    jobs = {Path(r["run_dir"]).name: r.get("job_id") for r in _read_json(sweep_dir / SUMMARY).get("runs", [])}
    rows = []
    for summary in sorted(sweep_dir.glob("*/summary.json")):
        rows.append({**run_row(summary.parent), "job_id": jobs.get(summary.parent.name)})
    if not rows:
        print(f"no runs in {sweep_dir} yet")
        return 1
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
