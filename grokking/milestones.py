"""Grokking milestones read off the evaluation records (definitions in docs/metrics.md)."""
from __future__ import annotations


def first_step(records: list[dict], key: str, threshold: float) -> int | None:
    """The first evaluated step whose ``key`` is at least ``threshold``; None if never."""
    for record in records:
        value = record.get(key)
        if value is not None and value >= threshold:
            return record["step"]
    return None


def first_step_below(records: list[dict], key: str, threshold: float) -> int | None:
    """The first evaluated step whose ``key`` is below ``threshold``; None if never."""
    for record in records:
        value = record.get(key)
        if value is not None and value < threshold:
            return record["step"]
    return None


def milestones(records: list[dict], memorize_at: float, grok_at: float) -> dict:
    """steps_to_memorize (train/acc), steps_to_grok (val/acc) and grok_gap between them."""
    memorized = first_step(records, "train/acc", memorize_at)
    grokked = first_step(records, "val/acc", grok_at)
    gap = grokked - memorized if memorized is not None and grokked is not None else None
    return {"steps_to_memorize": memorized, "steps_to_grok": grokked, "grok_gap": gap}


def stops_early(cfg, record: dict) -> bool:
    """Whether the evaluation ``record`` meets the run's early stop: val/acc at least
    ``early_stop``, or val/loss below ``early_stop_loss`` (either that is set)."""
    acc, loss = cfg.get("early_stop"), cfg.get("early_stop_loss")
    value = record.get("val/loss")
    return ((acc is not None and (record.get("val/acc") or 0) >= acc)
            or (loss is not None and value is not None and value < loss))


def update(marks: dict, record: dict, memorize_at: float, grok_at: float) -> list[str]:
    """Fold one new evaluation into ``marks`` (as returned by ``milestones``); return the
    milestones it reached for the first time."""
    reached = []
    for key, metric, threshold in (("steps_to_memorize", "train/acc", memorize_at), ("steps_to_grok", "val/acc", grok_at)):
        value = record.get(metric)
        if marks[key] is None and value is not None and value >= threshold:
            marks[key] = record["step"]
            reached.append(key)
    if marks["grok_gap"] is None and None not in (marks["steps_to_memorize"], marks["steps_to_grok"]):
        marks["grok_gap"] = marks["steps_to_grok"] - marks["steps_to_memorize"]
    return reached
