"""``launcher=slurm`` / ``launcher=local``: Hydra's submitit launchers plus the sweep summary of
grokking.launcher (all runs of a grid are waited for, failed ones are reported, not raised).
``launcher=basic`` (the default): Hydra's basic launcher, which trains packs with ``pack=N``."""
from hydra._internal.core_plugins import basic_launcher
from hydra_plugins.hydra_submitit_launcher import submitit_launcher

from grokking.launcher import ReportingMixin
from grokking.pack.launch import launch_basic


class SlurmLauncher(ReportingMixin, submitit_launcher.SlurmLauncher):
    pass


class LocalLauncher(ReportingMixin, submitit_launcher.LocalLauncher):
    pass


class BasicLauncher(basic_launcher.BasicLauncher):
    def launch(self, job_overrides, initial_job_idx):
        packed = launch_basic(self, job_overrides, initial_job_idx)
        return super().launch(job_overrides, initial_job_idx) if packed is None else packed
