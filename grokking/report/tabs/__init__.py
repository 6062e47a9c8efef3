"""The tabs of a run's report, one module per tab, each ``build(run) -> Tab``.

A tab that does not apply to the run (attention for an MLP, Fourier views without a modulus)
returns ``Tab(title, absent=why)``, and the page says why instead of drawing it.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Tab:
    title: str
    figures: list = field(default_factory=list)  # plotly Figures, drawn in order
    notes: list[str] = field(default_factory=list)  # sentences above the figures (numbers worth reading)
    absent: str | None = None  # why the tab does not apply to this run


def build_tabs(run) -> list[Tab]:
    from grokking.report.tabs import attention, evolution, fourier, mechanism, neurons, output, progress, training

    return [module.build(run) for module in (training, fourier, evolution, output, attention, neurons, progress,
                                              mechanism)]
