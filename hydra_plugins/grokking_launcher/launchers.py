"""``launcher=slurm`` / ``launcher=local``: Hydra's submitit launchers plus the sweep summary of
grokking.launcher (all runs of a grid are waited for, failed ones are reported, not raised).
``launcher=basic`` (the default): Hydra's basic launcher, which trains packs with ``pack=N``.
All of them leave out the runs that ended for good (grokking/sweep.py) and end a study's grid
with its page (grokking/study)."""
from hydra._internal.core_plugins import basic_launcher
from hydra_plugins.hydra_submitit_launcher import submitit_launcher

from grokking.launcher import ReportingMixin
from grokking.pack.launch import launch_basic
from grokking.sweep import compose_once, study_page


class SlurmLauncher(ReportingMixin, submitit_launcher.SlurmLauncher):
    pass


class LocalLauncher(ReportingMixin, submitit_launcher.LocalLauncher):
    pass


class BasicLauncher(basic_launcher.BasicLauncher):
    def setup(self, *, hydra_context, task_function, config):
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        compose_once(hydra_context.config_loader)

    def launch(self, job_overrides, initial_job_idx):
        returns = launch_basic(self, job_overrides, initial_job_idx)
        study_page(self.config)
        return returns
