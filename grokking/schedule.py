"""Which steps are evaluated: every ``eval_every`` steps, or log-spaced (as openai/grok does)."""
from __future__ import annotations

import math

from grokking.errors import ConfigError


def eval_steps(cfg) -> set[int]:
    """The evaluated steps in (0, steps]; the last step is always evaluated by the loop."""
    if cfg.eval_schedule == "linear":
        return set(range(cfg.eval_every, cfg.steps + 1, cfg.eval_every))
    if cfg.eval_schedule == "log":
        if cfg.eval_per_decade < 1:
            raise ConfigError(f"eval_per_decade={cfg.eval_per_decade} is invalid; it must be >= 1")
        count = math.ceil(math.log10(max(cfg.steps, 1)) * cfg.eval_per_decade)
        return {round(10 ** (i / cfg.eval_per_decade)) for i in range(count + 1)} - {0}
    raise ConfigError(f"eval_schedule={cfg.eval_schedule} is invalid; allowed: linear, log")
