"""``python -m grokking.report <run folder | sweep folder>`` (console script ``grokking-report``)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from grokking.errors import ConfigError
from grokking.report import DEFAULT_SNAPSHOTS


def is_run(folder: Path) -> bool:
    return (folder / "checkpoints").is_dir() or (folder / "summary.json").is_file()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="grokking-report", description=(
        "Write report.html into a run folder (one self-contained page), or, for a sweep folder, a report "
        "per run sharing one plotly.min.js plus the sweep's report.html."))
    parser.add_argument("folder", type=Path, help="a run folder (runs/<name>) or a sweep folder (runs/sweeps/<name>)")
    parser.add_argument("--snapshots", type=int, default=DEFAULT_SNAPSHOTS,
                        help=f"at most this many checkpoints on the sliders, evenly spread (default {DEFAULT_SNAPSHOTS})")
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, ...")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def report(folder: Path, snapshots: int, device: str, progress: bool) -> list[Path]:
    if snapshots < 2:
        raise ConfigError(f"--snapshots={snapshots} is invalid; it must be an integer >= 2")
    if not folder.is_dir():
        raise ConfigError(f"{folder}: no such folder; give a run folder or a sweep folder")
    from grokking.report.run import write_run_report  # torch and plotly load only once the input is fine
    from grokking.report.sweep import write_sweep_report

    if is_run(folder):
        return [write_run_report(folder, snapshots, device, progress=progress)]
    if not any(folder.rglob("summary.json")):
        raise ConfigError(f"{folder} is neither a run folder (no checkpoints/ or summary.json) nor a sweep "
                          "folder (no run folders inside)")
    return write_sweep_report(folder, snapshots, device, progress)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.time()
    try:
        written = report(args.folder, args.snapshots, args.device, not args.quiet)
    except ConfigError as e:
        print(f"grokking: error: {e}", file=sys.stderr)
        sys.exit(2)
    size = sum(p.stat().st_size for p in written)
    print(f"wrote {written[-1]} ({len(written)} page{'s' * (len(written) > 1)}, {size / 1e6:.1f} MB, "
          f"{time.time() - started:.0f} s)")
