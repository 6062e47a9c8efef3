"""``launcher=slurm`` / ``launcher=local``: Hydra's submitit launchers plus the sweep summary of
grokking.launcher (all runs of a grid are waited for, failed ones are reported, not raised)."""
from hydra_plugins.hydra_submitit_launcher import submitit_launcher

from grokking.launcher import ReportingMixin


class SlurmLauncher(ReportingMixin, submitit_launcher.SlurmLauncher):
    pass


class LocalLauncher(ReportingMixin, submitit_launcher.LocalLauncher):
    pass
