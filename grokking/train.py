"""Training entrypoint: ``python -m grokking.train [key=value ...]`` (Hydra overrides).

compose config -> ``grokking.training.loop.train`` (data, model, optimizer on the device ->
the loop -> the run record). ``main`` wraps it for Hydra and turns known bad input into a
one-line error; ``grokking.training.loop.train(cfg, run_dir)`` runs without Hydra (tests,
notebooks).
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from grokking import schema
from grokking.config import CONF_DIR, check_command_line, check_resumable, quote_path_overrides
from grokking.errors import EXIT_CODES, ConfigError, Diverged, NoSpace, one_line
from grokking.objective import scored
from grokking.record import RunRecord
from grokking.training.loop import train


def resume_config(cfg: DictConfig, run_dir: Path) -> DictConfig:
    """``resume=<folder>``: that run's stored config, with the keys that may change when a run
    continues (steps, device, logger, ...) taken from the command line where given there."""
    check_resumable(cfg.resume)
    record = RunRecord(run_dir)
    stored = record.load_last()
    record.restore_hydra_files(stored.get("hydra_files", {}))  # Hydra just wrote this launch's
    merged = OmegaConf.create(stored["config"])
    given = {o.lstrip("+~").split("=")[0].split(".")[0] for o in HydraConfig.get().overrides.task}
    for key in given & set(schema.runtime_keys()):
        merged[key] = cfg[key]
    return merged


@hydra.main(config_path=CONF_DIR, config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> dict | float:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        if cfg.resume:
            cfg = resume_config(cfg, run_dir)
        return scored(cfg, train(cfg, run_dir))
    except (ConfigError, Diverged, NoSpace) as e:
        print(one_line(e), file=sys.stderr)
        if HydraConfig.get().mode != RunMode.MULTIRUN:
            sys.exit(EXIT_CODES[type(e)])
        if isinstance(e, Diverged):  # an outcome of a grid point (a search scores its penalty)
            return scored(cfg, RunRecord(run_dir).read_summary())
        raise  # jobs of a grid may share this process: let Hydra record the failure and go on


def cli() -> None:
    """``python -m grokking.train`` and the ``grokking-train`` console script."""
    sys.argv = quote_path_overrides(sys.argv)
    try:
        check_command_line(sys.argv[1:])
    except ConfigError as e:
        print(one_line(e), file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli()
