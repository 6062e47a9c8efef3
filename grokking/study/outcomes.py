"""A run's outcome for a study, read off its evaluations (metrics.jsonl) and summary.json.

- ``steps_to_val_acc`` / ``steps_to_train_acc``: the first evaluated step whose accuracy is at
  least ``threshold`` (Power et al. 2022: 99 % validation accuracy; Lee et al. 2024: 95 %).
- ``steps_to_val_loss``: the first evaluated step whose validation loss is below ``threshold``
  (Nanda et al. 2023: test loss < 0.1).
- ``final``: the last evaluated value of ``metric``.
- ``phase``: the four phases of Liu et al. (2022, "Towards understanding grokking"), named as
  Omnigrok (Liu, Michaud, Tegmark 2023) names them: *confusion* (train accuracy never reaches
  ``threshold``), *memorisation* (train does, validation never does), *grokking* (validation
  reaches it more than ``delay`` steps after train), *comprehension* (within ``delay`` steps).
  The thresholds are the study's, not the papers'.

A run that has not reached the outcome is *not reached within N steps* once it has ended
(completed or diverged; N is the step it ended at); while it still trains (or was interrupted) it
is *unfinished*: it may yet reach it.
"""
from __future__ import annotations

from dataclasses import dataclass

from grokking.milestones import first_step, first_step_below

ENDED = ("completed", "diverged")
PHASES = ("comprehension", "grokking", "memorisation", "confusion")
STEPS_TO = {"steps_to_val_acc": ("val/acc", "at least"), "steps_to_train_acc": ("train/acc", "at least"),
            "steps_to_val_loss": ("val/loss", "below")}


@dataclass
class Outcome:
    """``value``: steps, a final value or a phase; None when not reached (yet)."""

    value: float | str | None
    ended: bool  # the run will not train further (completed or diverged)
    steps: int  # the step the run is at (or ended at)

    @property
    def reached(self) -> bool:
        return self.value is not None

    @property
    def pending(self) -> bool:
        """Not reached, and the run may still reach it."""
        return self.value is None and not self.ended


def phase(records: list[dict], threshold: float, delay: int) -> str:
    """One of PHASES for the evaluations of an ended run (see the module's docstring)."""
    train = first_step(records, "train/acc", threshold)
    val = first_step(records, "val/acc", threshold)
    if train is None:
        return "confusion"
    if val is None:
        return "memorisation"
    return "grokking" if val - train > delay else "comprehension"


def outcome(study, records: list[dict], summary: dict) -> Outcome:
    """The study's outcome for one run (``study``: a ``grokking.schema.Study`` config)."""
    ended = summary.get("status") in ENDED
    steps = summary.get("step", records[-1]["step"] if records else 0)
    kind = str(study.outcome)
    if kind in STEPS_TO:
        key, how = STEPS_TO[kind]
        find = first_step if how == "at least" else first_step_below
        return Outcome(find(records, key, study.threshold), ended, steps)
    if not ended:  # a final value or a phase is known only once the run has ended
        return Outcome(None, False, steps)
    if kind == "final":
        values = [r[study.metric] for r in records if r.get(study.metric) is not None]
        return Outcome(values[-1] if values else None, True, steps)
    return Outcome(phase(records, study.threshold, study.delay), True, steps)


def describe(study) -> str:
    """The outcome in words, for axes and tables: "steps to val/loss < 0.1"."""
    kind = str(study.outcome)
    if kind in STEPS_TO:
        key, how = STEPS_TO[kind]
        return f"steps to {key} {'≥' if how == 'at least' else '<'} {study.threshold:g}"
    if kind == "final":
        return f"final {study.metric}"
    return f"phase (accuracy {study.threshold:g}; grokking: validation > {study.delay} steps after train)"
