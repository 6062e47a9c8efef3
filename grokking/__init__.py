"""grokking: Hydra-composed grokking experiments.

grokking/conf/hydra/launcher/{basic,submitit_local,submitit_slurm}.yaml shadow the configs of
those names, so that Hydra's own spelling ``hydra/launcher=submitit_slurm`` gets grokking's
launcher. Hydra then checks each file against the plugin's schema of the same name (wanted: typos
and wrong types are caught) and warns that matching by name is deprecated. Every entry point
imports this package before Hydra composes a config, so the warning is silenced here, for those
three files only (Hydra's plugin scan discards filters set while it imports hydra_plugins).
"""
import warnings

warnings.filterwarnings(
    "ignore", message=r"\s*'hydra/launcher/(basic|submitit_local|submitit_slurm)' is validated against ConfigStore schema")
