"""Compare the runs of a sweep: a table of outcomes, overlaid curves and a phase diagram.

Runs come from a sweep folder (each run's summary.json, metrics.jsonl, .hydra/overrides.yaml)
or, online, from a W&B group (``wandb.Api``). The swept parameters are the override keys whose
values differ between runs; keys that do not change what a run computes (steps, logger, out_dir,
...) are left out. ``seed`` among them means repeats: runs that differ only in their seed form
one grid point, whose row shows mean ± std over its runs, ``n`` and how many grokked.
steps_to_grok is averaged over the runs that grokked; the ``grokked`` column tells how many did.

    python scripts/compare.py runs/sweeps/grid --sort steps_to_grok
    python scripts/compare.py my-sweep --wandb me/grokking      # a W&B group, online
"""
from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from grokking import schema
from grokking.loggers import summary_values
from grokking.record import RunRecord

REPEAT_KEY = "seed"
OUTCOMES = ("train/acc", "val/acc", "steps_to_memorize", "steps_to_grok", "grok_gap", "fourier_ipr")
RANK_PREFIX = "feature_rank/"
# a "," that starts the next "key=value" of a Hydra override string (values may hold commas: [1,2])
_OVERRIDE_SEP = re.compile(r",(?=[+~]*[\w./-]+=)")


@dataclass
class Run:
    name: str
    params: dict  # override key -> value as typed (sorted as a number where it is one)
    final: dict  # final values: the summary, completed by the last value of each metric
    curve: list[tuple[int, float]] = field(default_factory=list)  # (step, val/acc)


@dataclass
class Spread:
    """Mean and sample standard deviation of the values of one grid point."""

    mean: float
    std: float
    n: int


# --- gathering runs ------------------------------------------------------------------------------
def load_sweep(folder: Path) -> list[Run]:
    """Every run folder (one holding summary.json) under ``folder``."""
    return [_load_run_dir(p.parent) for p in sorted(Path(folder).rglob("summary.json"))]


def _load_run_dir(run_dir: Path) -> Run:
    record = RunRecord(run_dir)
    records = record.read_metrics()
    final = {k: v for r in records for k, v in r.items() if v is not None}
    final.update(record.read_summary())
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    return Run(run_dir.name, parse_overrides(overrides or []), final, _curve(records, "step"))


def load_wandb_group(project_path: str, group: str) -> list[Run]:
    """The runs of one W&B group; parameters come from their names (the override strings)."""
    import wandb

    runs = []
    for run in wandb.Api().runs(project_path, filters={"group": group}):
        rows = run.scan_history(keys=["_step", "val/acc"])
        final = summary_values(run.summary_metrics)  # {"max": .., "last": ..} of val/acc etc.: the last
        runs.append(Run(run.name, parse_name(run.name or ""), final, _curve(rows, "_step")))
    return runs


def parse_name(name: str) -> dict:
    """Parameters of a run named by its override string (``frac=0.3,betas=[0.9,0.98],seed=1``)."""
    return parse_overrides(_OVERRIDE_SEP.split(name))


def _curve(rows, step_key: str) -> list[tuple[int, float]]:
    return [(r[step_key], r["val/acc"]) for r in rows if r.get("val/acc") is not None]


def parse_overrides(overrides: list[str]) -> dict:
    """``["frac=0.3", "+model.depth=2", ...]`` -> ``{"frac": "0.3", "model.depth": "2"}``, without
    the keys that may change when a run continues (they do not define the run)."""
    params = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.lstrip("+~")
        info = schema.key_info(key)
        if sep and key.split(".")[0] != "hydra" and (info is None or info.role != schema.RUNTIME):
            params[key] = value
    return params


def as_number(text: str):
    """An override's value as it reads: an int, a float, else the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# --- table ---------------------------------------------------------------------------------------
def swept_keys(runs: list[Run]) -> list[str]:
    """Override keys whose values differ between runs, in the order they were given."""
    keys = list(dict.fromkeys(k for run in runs for k in run.params))
    return [k for k in keys if len({repr(run.params.get(k)) for run in runs}) > 1]


def outcome_columns(runs: list[Run]) -> list[str]:
    """OUTCOMES, then feature_rank/<layer> of any run; fourier_ipr only where some run has it."""
    present = {k for run in runs for k in run.final}
    ranks = sorted(k for k in present if k.startswith(RANK_PREFIX))
    return [k for k in OUTCOMES if k != "fourier_ipr" or k in present] + ranks


def group_runs(runs: list[Run], keys: list[str]) -> dict[tuple, list[Run]]:
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(run.params.get(k) for k in keys), []).append(run)
    return groups


def spread(values) -> Spread | None:
    """Spread of the numbers among ``values`` (None, NaN and non-numbers are left out)."""
    nums = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if not nums:
        return None
    std = statistics.stdev(nums) if len(nums) > 1 else 0.0
    return Spread(statistics.fmean(nums), std, len(nums))


def table(runs: list[Run]) -> tuple[list[str], list[dict]]:
    """Columns and rows: one row per run, or per grid point when ``seed`` is swept."""
    swept = swept_keys(runs)
    grid = [k for k in swept if k != REPEAT_KEY]
    outcomes = outcome_columns(runs)
    if REPEAT_KEY not in swept:
        columns = (swept or ["run"]) + ["status"] + outcomes
        rows = [{**run.final, "run": run.name, **run.params} for run in runs]
        return columns, sort_rows(rows, columns[: len(swept)])
    rows = []
    for point, members in group_runs(runs, grid).items():
        row = dict(zip(grid, point), n=len(members))
        row["grokked"] = f"{sum(m.final.get('steps_to_grok') is not None for m in members)}/{len(members)}"
        row["diverged"] = sum(diverged(m) for m in members)
        row.update({col: spread(m.final.get(col) for m in members if not diverged(m)) for col in outcomes})
        rows.append(row)
    return grid + ["n", "grokked", "diverged"] + outcomes, sort_rows(rows, grid)


def diverged(run: Run) -> bool:
    """A run whose loss left the finite numbers: an outcome of its grid point, not a failure."""
    return run.final.get("status") == "diverged"


def sort_key(value) -> tuple:
    """Sort key: numbers (and spreads by their mean), then strings, then missing values."""
    if isinstance(value, Spread):
        value = value.mean
    if isinstance(value, str):
        value = as_number(value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (2, 0)
    return (1, value) if isinstance(value, str) else (0, value)


def sort_rows(rows: list[dict], keys: list[str], descending: bool = False) -> list[dict]:
    """Rows sorted by ``keys`` in turn; missing values last even when descending."""
    def key(row):
        return tuple(sort_key(row.get(k)) for k in keys)

    present, missing = [], []
    for row in rows:
        (missing if any(sort_key(row.get(k))[0] == 2 for k in keys) else present).append(row)
    return sorted(present, key=key, reverse=descending) + sorted(missing, key=key)


def fmt(value) -> str:
    if isinstance(value, Spread):
        return fmt(value.mean) if value.n == 1 else f"{fmt(value.mean)} ± {fmt(value.std)}"
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    return str(value)


def format_table(columns: list[str], rows: list[dict]) -> str:
    cells = [columns] + [[fmt(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(line, widths)) for line in cells)


# --- plots ---------------------------------------------------------------------------------------
def _label(keys: list[str], point: tuple) -> str:
    return ", ".join(f"{k}={v}" for k, v in zip(keys, point)) or "all runs"


def plot_curves(runs: list[Run], path: Path) -> Path:
    """Validation accuracy of every run against log steps, one colour per grid point."""
    import matplotlib.pyplot as plt

    grid = [k for k in swept_keys(runs) if k != REPEAT_KEY]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = group_runs(runs, grid)
    for i, (point, members) in enumerate(groups.items()):
        for j, run in enumerate(members):
            steps = [(s, a) for s, a in run.curve if s > 0]  # step 0 has no place on a log axis
            ax.plot(*zip(*steps) if steps else ([], []), color=f"C{i % 10}", alpha=0.8,
                    label=_label(grid, point) if j == 0 else None)
    ax.set(xscale="log", xlabel="step", ylabel="validation accuracy", ylim=(0, 1.02))
    if len(groups) <= 20:
        ax.legend(fontsize="small")
    return _save(fig, path)


def phase_cells(runs: list[Run], x: str, y: str) -> dict[tuple, tuple[Spread | None, int, int]]:
    """Per (x value, y value): steps_to_grok over the runs that grokked (None: none did), the
    number of runs there, and how many of them diverged."""
    return {point: (spread(m.final.get("steps_to_grok") for m in members), len(members),
                    sum(diverged(m) for m in members))
            for point, members in group_runs(runs, [x, y]).items()}


def plot_phase(runs: list[Run], x: str, y: str, path: Path) -> Path:
    """Heat map of mean steps_to_grok over (x, y): cells where no run grokked are hatched and
    read "never 0/n" (red and "diverged" where every run there diverged), cells where only k of
    n runs grokked add "k/n", and "d div." when d of them diverged."""
    import matplotlib.pyplot as plt
    import numpy as np

    cells = phase_cells(runs, x, y)
    xs = sorted({vx for vx, _ in cells}, key=sort_key)
    ys = sorted({vy for _, vy in cells}, key=sort_key)
    means = np.full((len(ys), len(xs)), np.nan)
    fig, ax = plt.subplots(figsize=(1.3 * len(xs) + 2.5, 1.0 * len(ys) + 1.5))
    for (vx, vy), (grok, n, n_diverged) in cells.items():
        i, j = ys.index(vy), xs.index(vx)
        if grok is None:
            colour = "red" if n_diverged == n else "grey"
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//", color=colour))
            text = f"diverged\n{n}/{n}" if n_diverged == n else f"never\n0/{n}"
        else:
            means[i, j] = grok.mean
            text = fmt(grok.mean) + ("" if grok.n == n else f"\n{grok.n}/{n}")
        if 0 < n_diverged < n:
            text += f"\n{n_diverged} div."
        ax.text(j, i, text, ha="center", va="center", fontsize="small",
                bbox={"facecolor": "white", "alpha": 0.7, "linewidth": 0})
    image = ax.imshow(np.ma.masked_invalid(means), origin="lower", cmap="viridis_r", aspect="auto")
    fig.colorbar(image, ax=ax, label="steps to grok (mean over grokked runs)")
    ax.set(xticks=range(len(xs)), xticklabels=[str(v) for v in xs], xlabel=x,
           yticks=range(len(ys)), yticklabels=[str(v) for v in ys], ylabel=y)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# --- command line --------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="compare.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a sweep folder, or a W&B group name with --wandb")
    parser.add_argument("--wandb", metavar="ENTITY/PROJECT", help="read the group from W&B (online)")
    parser.add_argument("--sort", metavar="KEY", help="column to sort by (missing values last)")
    parser.add_argument("--reverse", action="store_true", help="sort in descending order")
    parser.add_argument("--phase", nargs=2, metavar=("X", "Y"),
                        help="axes of the steps_to_grok heat map (default: the two swept keys); "
                        "runs differing in other keys share a cell")
    parser.add_argument("--out", type=Path, help="folder of the PNGs (default: <sweep>/compare or ./compare-<group>)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.wandb:
        runs, out = load_wandb_group(args.wandb, args.source), Path(f"compare-{args.source}")
    else:
        runs, out = load_sweep(Path(args.source)), Path(args.source) / "compare"
    if not runs:
        sys.exit(f"compare: no runs in {args.source}")
    columns, rows = table(runs)
    grid = [k for k in swept_keys(runs) if k != REPEAT_KEY]
    axes = args.phase or (grid if len(grid) == 2 else [])
    if args.sort and args.sort not in columns:
        sys.exit(f"compare: --sort {args.sort}: no such column; columns: {', '.join(columns)}")
    for key in axes:
        if all(key not in run.params for run in runs):
            sys.exit(f"compare: --phase {key}: not a parameter of these runs")
    if args.sort:
        rows = sort_rows(rows, [args.sort], descending=args.reverse)
    print(format_table(columns, rows))
    out = args.out or out
    written = [plot_curves(runs, out / "val_acc.png")]
    if axes:
        written.append(plot_phase(runs, *axes, out / f"phase_{axes[0]}_{axes[1]}.png"))
    print("\n".join(f"wrote {p}" for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
