"""A run's training curves as a matplotlib figure: the analysis (grokking/analyze.py) draws them
from the checkpoints' record, the W&B logger from the run's history."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save(figure, path: Path) -> None:
    figure.savefig(path, dpi=100)
    plt.close(figure)


def mark_milestones(ax, marks: dict) -> None:
    for key, style in (("steps_to_memorize", ":"), ("steps_to_grok", "--")):
        if marks[key] is not None:
            ax.axvline(marks[key], color="grey", linestyle=style, label=key.replace("steps_to_", ""))


def series(records: list[dict], key: str, positive_steps: bool = False):
    pairs = [(r["step"], r[key]) for r in records if r.get(key) is not None and (r["step"] > 0 or not positive_steps)]
    return [s for s, _ in pairs], [v for _, v in pairs]


def plot_curves(history: list[dict], marks: dict):
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for ax, quantity in zip(axes, ("acc", "loss")):
        for split in ("train", "val"):
            ax.plot(*series(history, f"{split}/{quantity}", positive_steps=True), label=split)
        mark_milestones(ax, marks)
        ax.set(xscale="log", xlabel="step", ylabel=quantity, yscale="log" if quantity == "loss" else "linear")
        ax.legend()
    return figure
