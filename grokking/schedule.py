"""Which steps are evaluated: every ``eval_every`` steps (``linear``), log-spaced as openai/grok
does (``log``: ``eval_per_decade`` per decade), or log-spaced up to ``eval_every`` and every
``eval_every`` steps after that (``log_linear``: a log plot's early points, then the steady
cadence of a linear schedule, so that evaluations cost a fixed share of a long run).

Evaluating every example costs a minibatch transformer several training steps, so the schedule
sets much of a run's speed; milestones (steps_to_grok) are read at evaluations, so it also sets
how late they can be reported (docs/performance.md).
"""
from __future__ import annotations

import math


def eval_steps(cfg) -> set[int]:
    """The evaluated steps in (0, steps]; the last step is always evaluated by the loop. The
    steps below any bound do not depend on ``steps``, so an extended run evaluates as one long run."""
    kind, every, steps = cfg.eval_schedule, cfg.eval_every, cfg.steps  # checked by grokking/schema.py
    linear = set(range(every, steps + 1, every))
    if kind == "linear":
        return linear
    per_decade = cfg.eval_per_decade
    if kind == "log":
        return log_spaced(per_decade, steps)
    return {step for step in log_spaced(per_decade, every) if step < every} | linear


def log_spaced(per_decade: int, up_to: int) -> set[int]:
    """Steps 10^(i / per_decade), rounded, for i = 0, 1, ... until one reaches ``up_to``."""
    count = math.ceil(math.log10(max(up_to, 1)) * per_decade)
    return {round(10 ** (i / per_decade)) for i in range(count + 1)} - {0}
