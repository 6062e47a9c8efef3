"""``pack=N``: the runs of a ``-m`` grid trained together, up to N per process.

The launchers hand their whole grid here first (hydra_plugins/grokking_launcher/launchers.py:
the basic launcher; grokking/launcher.py ReportingMixin: launcher=local|slurm). Without ``pack``
nothing changes. With it, jobs whose configs agree on every shape key and on the process
settings (device, threads, progress: grokking/training/together.py) are grouped in the grid's order, N
at most per pack; the rest of the grid forms other packs, and a job left alone runs as the
ordinary solo job. Each pack is one job: in this
process for the basic launcher, one array task for SLURM (a requeued task resumes its pack).

Every member is still an ordinary job to Hydra: ``run_job`` makes its folder (the solo run's
name), writes its .hydra files and gives its JobReturn; only the training is shared
(grokking.training.loop.train_runs). The grid's table and sweep_summary.json list members as runs.
"""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict

from grokking.errors import ConfigError, Diverged, one_line
from grokking.objective import scored
from grokking.record import RunRecord
from grokking.sweep import ended_jobs, executor, importable, last_line, report_sweep, run_row, sweep_configs
from grokking.training.together import pack_settings, shape_signature

DIR_KEYS = {"job_dir_key": "hydra.sweep.dir", "job_subdir_key": "hydra.sweep.subdir"}
log = logging.getLogger(__name__)


def pack_size(cfg: DictConfig) -> int:
    """The ``pack`` knob of a job (its type and range are the schema's): 1 (no packing) when null."""
    return OmegaConf.select(cfg, "pack", default=None) or 1


def group(configs: list[DictConfig]) -> list[list[int]] | None:
    """Job indices of each pack, in the grid's order; None when no job asks for packing."""
    sizes = [pack_size(cfg) for cfg in configs]
    if all(size == 1 for size in sizes):
        return None
    packs, filling = [], {}
    for i, (cfg, size) in enumerate(zip(configs, sizes)):
        try:
            key = (size, pack_settings(cfg), shape_signature(cfg))
        except ConfigError:  # a bad op or p: the job runs alone and fails with its own error
            key = None
        pack = filling.get(key)
        if size == 1 or key is None or pack is None or len(pack) == size:
            pack = filling[key] = []
            packs.append(pack)
        pack.append(i)
    return packs


@dataclass
class Plan:
    """A grid about to be launched: every job's config (composed once, here), the results of the
    jobs whose runs ended for good (grokking/sweep.py: not launched again), and the packs of the
    others (``packed`` false: no job asks for packing, and each job is a pack of one)."""

    configs: list[DictConfig]
    ended: dict[int, JobReturn]
    packs: list[list[int]]
    packed: bool


def plan(launcher, job_overrides, initial_job_idx: int) -> Plan:
    """The grid's ``Plan``. A bad ``pack`` or a ``resume`` in a packed grid is one line on stderr
    and exit status 2, before any job starts."""
    setup_globals()
    nums = [initial_job_idx + i for i in range(len(job_overrides))]
    configs = sweep_configs(launcher, job_overrides, nums)
    try:
        packs = group(configs)
        if packs is not None and any(cfg.resume for cfg in configs):
            raise ConfigError("resume= does not go with pack: run the same -m command again and every "
                              "pack continues from its runs' folders")
    except ConfigError as e:
        print(f"grokking: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    ended = ended_jobs(configs, job_overrides)
    kept = [[i for i in pack if i not in ended] for pack in packs or [[i] for i in range(len(configs))]]
    return Plan(configs, ended, [pack for pack in kept if pack], packs is not None)


def run_pack(hydra_context, task_function, configs: list[DictConfig]) -> list[JobReturn]:
    """Run one pack (in the calling process): a pack of one is the ordinary job."""
    if len(configs) == 1:
        return [run_job(hydra_context=hydra_context, task_function=task_function, config=configs[0], **DIR_KEYS)]
    from grokking.training.loop import train_runs  # torch and the engine: only where a pack trains

    prepared = [run_job(hydra_context=hydra_context, task_function=lambda cfg: cfg, config=c, **DIR_KEYS)
                for c in configs]
    run_dirs = [Path(c.hydra.runtime.output_dir) for c in configs]
    saved = HydraConfig.instance().cfg
    try:
        outcomes = train_runs([r.cfg for r in prepared], run_dirs, configs)
    except Exception as e:  # the whole pack failed: every member's job did
        outcomes = [e] * len(configs)
    finally:
        HydraConfig.instance().cfg = saved
    for ret, outcome, run_dir in zip(prepared, outcomes, run_dirs):
        ret.status, ret.return_value = job_outcome(ret.cfg, outcome, run_dir)
    return prepared


def job_outcome(cfg: DictConfig, outcome, run_dir: Path) -> tuple[JobStatus, object]:
    """A member's job status and return value as its solo job (grokking.train.main) gives them:
    its scored summary; a diverged run is an outcome of its grid point (a search scores its
    penalty), said in one line; any other error fails the job, said in one line."""
    if isinstance(outcome, Diverged):
        print(one_line(outcome, run_dir.name), file=sys.stderr, flush=True)
        return JobStatus.COMPLETED, scored(cfg, RunRecord(run_dir).read_summary())
    if isinstance(outcome, BaseException):
        print(one_line(outcome, run_dir.name), file=sys.stderr, flush=True)
        return JobStatus.FAILED, outcome
    return JobStatus.COMPLETED, scored(cfg, outcome)


def sweep_row(num: int, overrides, cfg: DictConfig, ret: JobReturn | None, error: str | None = None) -> dict:
    """The member's row of the table: what its folder says, and the job's error if it failed."""
    run_dir = Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)
    row = {"num": num, "overrides": " ".join(filter_overrides(overrides)), **run_row(run_dir)}
    if ret is not None and ret.status == JobStatus.COMPLETED or row["status"] == "diverged":
        if ret is not None:  # a diverged run is an outcome of its grid point, not a failure
            ret.status = JobStatus.COMPLETED
        return {**row, "status": row["status"] if row["status"] == "diverged" else "completed"}
    if error is None and ret is not None:
        error = f"{type(ret._return_value).__name__}: {ret._return_value}"
    if row["status"] not in ("interrupted", "diverged"):
        row["status"] = "failed"
    return {**row, "error": error or row["error"]}


# --- the basic launcher: every pack in this process, one after the other -----------------------
def launch_basic(launcher, job_overrides, initial_job_idx: int) -> list[JobReturn]:
    """Every pack of the grid in this process, one after the other; without packing each job is
    a pack of one, run as Hydra's basic launcher runs it (from the config composed once)."""
    planned = plan(launcher, job_overrides, initial_job_idx)
    configs = planned.configs
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    returns: dict[int, JobReturn] = dict(planned.ended)
    for pack in planned.packs:
        what = "; ".join(" ".join(filter_overrides(job_overrides[i])) for i in pack)
        if planned.packed:
            print(f"[grokking] pack of {len(pack)}: {what}", flush=True)
        else:
            log.info(f"\t#{initial_job_idx + pack[0]} : {what}")
        returns.update(zip(pack, run_pack(launcher.hydra_context, launcher.task_function, [configs[i] for i in pack])))
        configure_log(launcher.config.hydra.hydra_logging, launcher.config.hydra.verbose)
    ordered = [returns[i] for i in range(len(configs))]
    rows = [sweep_row(initial_job_idx + i, job_overrides[i], configs[i], ret) for i, ret in enumerate(ordered)]
    return report_sweep(sweep_dir, rows, ordered)


# --- submitit (launcher=local|slurm): one array task per pack ----------------------------------
class PackTask:
    """The callable of one array task: trains one pack. ``checkpoint`` is what submitit calls on
    a time-out or preemption (after the loop saved every member): resubmit the same pack."""

    def __init__(self, launcher):
        self.launcher = launcher

    def __call__(self, job_overrides: list[list[str]], nums: list[int], singleton_state) -> list[JobReturn]:
        import submitit

        Singleton.set_state(singleton_state)
        setup_globals()
        configs = sweep_configs(self.launcher, job_overrides, nums)
        job_id = submitit.JobEnvironment().job_id
        for cfg in configs:
            with open_dict(cfg):
                cfg.hydra.job.id = job_id
        return run_pack(self.launcher.hydra_context, self.launcher.task_function, configs)

    def checkpoint(self, *args, **kwargs):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def launch_submitit(launcher, job_overrides, initial_job_idx: int, planned: Plan) -> list[JobReturn]:
    """One array task per pack of ``planned`` (a packed grid)."""
    packs, configs, ended = planned.packs, planned.configs, planned.ended
    jobs_executor = executor(launcher)
    launcher.task_function = importable(launcher.task_function)
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    nums = [[initial_job_idx + i for i in pack] for pack in packs]
    overrides = [[list(job_overrides[i]) for i in pack] for pack in packs]
    jobs = jobs_executor.map_array(PackTask(launcher), overrides, nums, [Singleton.get_state()] * len(packs)) \
        if packs else []
    where = f"SLURM job {jobs[0].job_id.split('_')[0]}" if jobs and launcher._EXECUTOR == "slurm" else "local processes"
    print(f"[grokking] submitted {len(configs) - len(ended)} run(s) of {sweep_dir} in {len(packs)} pack(s) as {where}; "
          f"waiting for all of them\n[grokking] see how they do with: python -m grokking.launcher {sweep_dir}",
          flush=True)
    for job in jobs:
        job.wait()
    deadline = time.time() + (type(jobs[0])._results_timeout_s if jobs else 0)  # a dead job: wait once, not per job
    rows = [sweep_row(initial_job_idx + i, job_overrides[i], configs[i], ret) for i, ret in ended.items()]
    returns = list(ended.items())
    for pack, job in zip(packs, jobs):
        job._results_timeout_s = max(0.0, deadline - time.time())
        try:
            rets, error = job.results()[0], None
        except Exception as e:  # the process died (kill, time limit, ...): no JobReturns
            error = last_line(job.stderr()) or last_line(str(e))
            rets = [JobReturn(overrides=list(job_overrides[i]), status=JobStatus.FAILED, _return_value=e)
                    for i in pack]
        for i, ret in zip(pack, rets):
            row = sweep_row(initial_job_idx + i, job_overrides[i], configs[i], ret, error)
            rows.append({**row, "job_id": job.job_id, "stdout": str(job.paths.stdout), "stderr": str(job.paths.stderr)})
            returns.append((i, ret))
    ordered = [ret for _, ret in sorted(returns, key=lambda pair: pair[0])]
    return report_sweep(sweep_dir, sorted(rows, key=lambda r: r["num"]), ordered)
