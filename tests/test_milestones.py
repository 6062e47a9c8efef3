"""Milestones (METRICS.md): first evaluated step over a threshold, null when never reached."""
from grokking.milestones import milestones, update

RECORDS = [
    {"step": 0, "train/acc": 0.01, "val/acc": 0.01},
    {"step": 10, "train/acc": 0.995, "val/acc": 0.02},
    {"step": 20, "train/acc": 0.98, "val/acc": 0.5},
    {"step": 30, "train/acc": 1.0, "val/acc": 0.99},
    {"step": 40, "train/acc": 1.0, "val/acc": None},
]


def test_milestones_from_records():
    assert milestones(RECORDS, 0.99, 0.99) == {"steps_to_memorize": 10, "steps_to_grok": 30, "grok_gap": 20}
    assert milestones(RECORDS, 0.99, 0.999) == {"steps_to_memorize": 10, "steps_to_grok": None, "grok_gap": None}


def test_incremental_update_agrees_and_reports_each_milestone_once():
    marks = milestones([], 0.99, 0.99)
    reached = [update(marks, r, 0.99, 0.99) for r in RECORDS]
    assert marks == milestones(RECORDS, 0.99, 0.99)
    assert reached == [[], ["steps_to_memorize"], [], ["steps_to_grok"], []]
