"""``python -m grokking.study <study folder>`` (console script ``grokking-study``): the study's page
and table again, from the folder alone (e.g. while its grid still runs, or after it was copied)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grokking.errors import ConfigError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="grokking-study", description=(
        "Write study.html and study.csv into a study folder (<out_dir>/studies/<study>_<scale>): the study's "
        "figure with the published points, the outcome per grid point over seeds, and every run of its grid."))
    parser.add_argument("folder", type=Path, help="a study folder, e.g. runs/studies/nanda_frac_smoke")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.folder.is_dir():
        print(f"grokking: error: {args.folder}: no such folder; give a study folder "
              "(runs/studies/<study>_<scale>)", file=sys.stderr)
        sys.exit(2)
    from grokking.study.aggregate import CSV_FILE  # torch and plotly load only once the input is fine
    from grokking.study.page import write_study_page

    try:
        page = write_study_page(args.folder)
    except ConfigError as e:
        print(f"grokking: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {page} and {page.with_name(CSV_FILE)}")
