"""The number a hyper-parameter search optimises (``hydra/sweeper=optuna``): one key of the run's
summary, named by the config's ``objective`` (e.g. ``steps_to_grok``, ``val/loss``, ``grok_gap``).

A run without that number (it never grokked, so ``steps_to_grok`` is null) or that diverged in a
sweep scores ``objective_penalty``; its default, twice ``steps``, ranks such runs behind every run
that reached the milestone within ``steps`` when step counts are minimised. Set it for other
objectives (e.g. ``objective_penalty=0`` when maximising ``val/acc``).
"""
from __future__ import annotations

import math

from omegaconf import DictConfig

from grokking.errors import ConfigError


def penalty(cfg: DictConfig) -> float:
    given = cfg.get("objective_penalty")
    return float(2 * cfg.steps if given is None else given)


def objective_value(cfg: DictConfig, summary: dict) -> float:
    """``summary[cfg.objective]`` as a float, or the penalty where it is null or not finite."""
    key = cfg.objective
    if key not in summary:
        numeric = [k for k, v in summary.items() if v is None or isinstance(v, (int, float)) and not isinstance(v, bool)]
        raise ConfigError(f"objective={key} is not in the run's summary; allowed: {', '.join(numeric)}")
    value = summary[key]
    if value is None or not math.isfinite(float(value)):
        return penalty(cfg)
    return float(value)


def scored(cfg: DictConfig, summary: dict) -> dict | float:
    """What the task function returns: the run's summary, or with ``objective`` set, its score
    (a diverged run scores the penalty, whatever its last values were)."""
    if cfg.get("objective") is None:
        return summary
    if summary.get("status") == "diverged":
        return penalty(cfg)
    return objective_value(cfg, summary)
