"""Grokking milestones read off the evaluation records (definitions in docs/metrics.md)."""
from __future__ import annotations


def first_step(records: list[dict], key: str, threshold: float) -> int | None:
    """The first evaluated step whose ``key`` is at least ``threshold``; None if never."""
    for record in records:
        value = record.get(key)
        if value is not None and value >= threshold:
            return record["step"]
    return None


def milestones(records: list[dict], memorize_at: float, grok_at: float) -> dict:
    """steps_to_memorize (train/acc), steps_to_grok (val/acc) and grok_gap between them."""
    memorized = first_step(records, "train/acc", memorize_at)
    grokked = first_step(records, "val/acc", grok_at)
    gap = grokked - memorized if memorized is not None and grokked is not None else None
    return {"steps_to_memorize": memorized, "steps_to_grok": grokked, "grok_gap": gap}
