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

import sys
import time
from pathlib import Path
from typing import Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides

from grokking.pack.launch import Plan, launch_submitit, plan
from grokking.sweep import (SUMMARY, compose_once, executor, format_table, importable, job_run_dir, last_line,
                            read_json, report_sweep, run_row, study_page)


class ReportingMixin:
    """Put before a hydra_submitit_launcher launcher class: replaces its ``launch``."""

    def setup(self, *, hydra_context, task_function, config) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        compose_once(hydra_context.config_loader)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None and job_overrides
        planned = plan(self, job_overrides, initial_job_idx)
        returns = (launch_submitit(self, job_overrides, initial_job_idx, planned) if planned.packed
                   else self._launch_jobs(job_overrides, initial_job_idx, planned))
        study_page(self.config)
        return returns

    def _launch_jobs(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int, planned: Plan) -> list[JobReturn]:
        """One array task per run that has not ended for good (grokking/sweep.py)."""
        jobs_executor = executor(self)
        self.task_function = importable(self.task_function)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)

        every = [initial_job_idx + i for i in range(len(job_overrides))]
        configs, ended = planned.configs, planned.ended
        todo = [i for i in range(len(job_overrides)) if i not in ended]
        params = [(list(job_overrides[i]), "hydra.sweep.dir", every[i], f"job_id_for_{every[i]}", Singleton.get_state())
                  for i in todo]
        jobs = jobs_executor.map_array(self, *zip(*params)) if params else []

        where = (f"SLURM job {jobs[0].job_id.split('_')[0]}" if jobs and self._EXECUTOR == "slurm"
                 else "local processes")
        print(f"[grokking] submitted {len(jobs)} run(s) of {sweep_dir} as {where}; waiting for all of them\n"
              f"[grokking] stopping this command does not stop the jobs; see how they do with\n"
              f"[grokking]   python -m grokking.launcher {sweep_dir}", flush=True)

        for job in jobs:
            job.wait()
        # A job that died leaves no result file; submitit waits 15 s for one (slow shared file
        # systems) at each such job: wait those 15 s once for the whole grid instead.
        deadline = time.time() + (type(jobs[0])._results_timeout_s if jobs else 0)
        rows = [{"num": every[i], "job_id": None, "overrides": " ".join(filter_overrides(job_overrides[i])),
                 **run_row(job_run_dir(configs[i]))} for i in ended]
        returns = list(ended.values())
        for i, job in zip(todo, jobs):
            num, overrides, run_dir = every[i], job_overrides[i], job_run_dir(configs[i])
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

        order = sorted(range(len(rows)), key=lambda k: rows[k]["num"])
        return report_sweep(sweep_dir, [rows[k] for k in order], [returns[k] for k in order])

    @staticmethod
    def _collect(job, overrides: list[str]) -> tuple[JobReturn, str | None]:
        """Wait for ``job``; its JobReturn, or a failed one with the error of a job that died."""
        try:
            ret = job.results()[0]
        except Exception as e:  # the process died (sys.exit, kill, time limit, ...): no JobReturn
            ret = JobReturn(overrides=overrides, status=JobStatus.FAILED, _return_value=e)
            return ret, last_line(job.stderr()) or last_line(str(e))
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
    jobs = {Path(r["run_dir"]).name: r.get("job_id") for r in read_json(sweep_dir / SUMMARY).get("runs", [])}
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
