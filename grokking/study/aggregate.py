"""A study's runs gathered per grid point: the outcome of every seed, its median and spread, the
runs that never reached it, the runs still unfinished and the grid points with no run at all.

The median and quartiles count a run that ended without reaching the outcome as reaching it
never (+inf): it is neither dropped nor given a made-up value, so a point where half the seeds
never got there has an infinite median, shown as "not reached". Quartiles interpolate linearly
between the sorted values (NumPy's default), and are infinite where that touches a never.
"""
from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from grokking import schema
from grokking.compare import as_number, parse_overrides, sort_key
from grokking.record import RunRecord
from grokking.study.definition import points
from grokking.study.outcomes import PHASES, Outcome, outcome

CSV_FILE = "study.csv"


@dataclass
class RunResult:
    run_dir: Path
    params: dict[str, str]  # the run's overrides that define it (runtime keys left out)
    status: str  # summary.json's status ("missing" without one)
    outcome: Outcome
    repeat: str  # how it differs from the other runs of its point: "seed=0"


@dataclass
class Cell:
    """One point of the figure: the values of its keys, its runs, and its grid points without a run."""

    point: dict[str, str]
    runs: list[RunResult] = field(default_factory=list)
    missing: list[dict[str, str]] = field(default_factory=list)

    @property
    def known(self) -> list[RunResult]:
        """The runs whose outcome is settled: reached, or never within a run that ended."""
        return [r for r in self.runs if not r.outcome.pending]

    @property
    def pending(self) -> list[RunResult]:
        return [r for r in self.runs if r.outcome.pending]

    @property
    def reached(self) -> list[RunResult]:
        return [r for r in self.runs if r.outcome.reached]

    @property
    def not_reached(self) -> list[RunResult]:
        return [r for r in self.known if not r.outcome.reached]

    def values(self) -> list[float]:
        """The numeric outcome of every run that has one for good: never reached counts as +inf."""
        return sorted(math.inf if r.outcome.value is None else float(r.outcome.value) for r in self.known)

    def quantile(self, q: float) -> float | None:
        return quantile(self.values(), q)

    def phase(self) -> str | None:
        """The most common phase among the ended runs (ties: in PHASES order)."""
        counts = self.phases()
        return max(PHASES, key=lambda p: (counts[p], -PHASES.index(p))) if counts else None

    def phases(self) -> Counter:
        return Counter(r.outcome.value for r in self.known if r.outcome.value is not None)


def quantile(values: list[float], q: float) -> float | None:
    """Linear-interpolation quantile of sorted ``values`` (inf where it involves an inf); None if empty."""
    if not values:
        return None
    pos = q * (len(values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    if math.isinf(values[hi]) and pos > lo or math.isinf(values[lo]):
        return math.inf
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def read_run(run_dir: Path, study) -> RunResult:
    record = RunRecord(run_dir)
    summary = record.read_summary()
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    params = parse_overrides(overrides)
    repeat = ",".join(f"{k}={v}" for k, v in params.items() if k in study.repeat) or run_dir.name
    return RunResult(run_dir, params, summary.get("status", "missing"), outcome(study, record.read_metrics(), summary),
                     repeat)


def defining(values: dict[str, list[str]]) -> dict[str, list[str]]:
    """The grid's keys that define a run (runtime keys such as steps are left out, as in folder names)."""
    return {k: v for k, v in values.items() if (schema.key_info(k) is None or schema.key_info(k).role != schema.RUNTIME)}


def cell_keys(study, runs: list[RunResult], values: dict[str, list[str]]) -> list[str]:
    """The keys a cell is told apart by: the other swept keys (the lines or panels), then x (and y)."""
    shown = [study.x] + ([study.y] if study.y else [])
    keys = list(dict.fromkeys([*defining(values), *(k for r in runs for k in r.params)]))
    varying = [k for k in keys if k not in shown and k not in study.repeat
               and len({r.params.get(k) for r in runs} | set(values.get(k, []))) > 1]
    return varying + shown


def collect(folder: Path, study, values: dict[str, list[str]]) -> tuple[list[str], list[Cell]]:
    """(cell keys, cells in order) of the runs under ``folder`` and the grid ``values``."""
    runs = [read_run(p.parent.parent, study) for p in sorted(Path(folder).glob("*/.hydra/overrides.yaml"))]
    keys = cell_keys(study, runs, values)
    cells: dict[tuple, Cell] = {}

    def cell_of(params: dict) -> Cell:
        point = {k: params.get(k) for k in keys}
        return cells.setdefault(tuple(point.values()), Cell(point))

    for run in runs:
        cell_of(run.params).runs.append(run)
    present = [r.params for r in runs]
    for point in points(defining(values)):
        if not any(all(p.get(k) == v for k, v in point.items()) for p in present):
            cell_of(point).missing.append(point)
    def rank(key: str, value) -> tuple:
        """Numbers in their order; names (ops, filters) in the grid's order, then any others."""
        if isinstance(as_number(str(value)), str) and value in values.get(key, []):
            return (1, values[key].index(value))
        return sort_key(value)

    ordered = sorted(cells.values(), key=lambda c: tuple(rank(k, v) for k, v in c.point.items()))
    return keys, ordered


def same(a, b) -> bool:
    """Two values of one key, as a YAML types it (0.25, 1.0e-4) and as a run's override ("0.25", "0.0001")."""
    return str(a) == str(b) or as_number(str(a)) == as_number(str(b))


def on_point(ref, point: dict, study) -> bool:
    """Whether a published point belongs to this cell (its x, its y, its group "key=value")."""
    wanted = [(study.x, ref.x)] + ([(study.y, ref.y)] if study.y else [])
    if ref.group:
        key, _, value = ref.group.partition("=")
        wanted.append((key, value))
    return all(point.get(k) is not None and same(point[k], v) for k, v in wanted)


def references_by_cell(study, cells: list[Cell]) -> dict[tuple, list]:
    return {tuple(c.point.values()): [r for r in study.reference if on_point(r, c.point, study)] for c in cells}


def write_csv(path: Path, keys: list[str], cells: list[Cell], study, references: dict) -> Path:
    """The aggregated table beside the page: one row per cell."""
    columns = [*keys, "runs", "known", "reached", "not_reached", "unfinished", "missing",
               "median", "q1", "q3", "phase", "values", "published", "published_source"]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for cell in cells:
            refs = references.get(tuple(cell.point.values()), [])
            phased = str(study.outcome) == "phase"
            stats = [None] * 3 if phased else [cell.quantile(q) for q in (0.5, 0.25, 0.75)]
            writer.writerow([*cell.point.values(), len(cell.runs) + len(cell.missing), len(cell.known),
                             len(cell.reached), len(cell.not_reached), len(cell.pending), len(cell.missing),
                             *(csv_number(v) for v in stats), (cell.phase() if phased else None) or "",
                             "; ".join(f"{r.repeat}:{shown_value(r)}" for r in cell.runs),
                             "; ".join(published(ref) for ref in refs),
                             "; ".join(sorted({ref.source for ref in refs}))])
    return path


def published(ref) -> str:
    """A published point in a word: its value, else what its source says."""
    return f"{ref.value:g}" if ref.value is not None else ref.label or ""


def csv_number(value: float | None) -> str:
    if value is None:
        return ""
    return "inf" if math.isinf(value) else f"{value:g}"


def shown_value(run: RunResult) -> str:
    """A run's outcome in a word: its value, ">N" (never reached within N steps) or "pending"."""
    if run.outcome.reached:
        value = run.outcome.value
        return f"{value:g}" if isinstance(value, float) else str(value)
    return "pending" if run.outcome.pending else f">{run.outcome.steps}"
