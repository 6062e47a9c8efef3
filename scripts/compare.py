"""Compare the runs of a sweep: ``python scripts/compare.py runs/sweeps/<name> [--sort KEY]``.

A table of swept parameters and outcomes on stdout, curves and a phase diagram as PNGs; see
grokking/compare.py and docs/wandb.md.
"""
import sys

from grokking.compare import main

if __name__ == "__main__":
    sys.exit(main())
