"""Progress display: a bar on a terminal, a plain line every few seconds in batch logs."""
from __future__ import annotations

import sys
import time

from tqdm import tqdm

from grokking.errors import ConfigError


class Progress:
    """``mode``: bar, lines, none, or auto (a bar when stderr is a terminal, else lines).

    Under SLURM stderr is a file, where a bar would write a line per refresh; ``lines`` writes at
    most one line every ``every_s`` seconds instead, plus the last one.
    """

    def __init__(self, mode: str, total: int, start: int, every_s: float):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        if mode not in ("bar", "lines", "none"):
            raise ConfigError(f"progress='{mode}' is invalid; allowed: auto, bar, lines, none")
        self.mode, self.total, self.every_s = mode, total, every_s
        self.last_line = 0.0
        self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True) if mode == "bar" else None

    def update(self, step: int, record: dict, final: bool = False) -> None:
        text = f"train {record['train/acc']:.3f}  val {fmt(record['val/acc'])}"
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix_str(text, refresh=False)
        elif self.mode == "lines" and (final or time.monotonic() - self.last_line >= self.every_s):
            self.last_line = time.monotonic()
            print(f"step {step}/{self.total}  {text}  train_loss {record['train/loss']:.3g}", flush=True)

    def note(self, text: str) -> None:
        """A one-off line (a milestone) that stays visible above the bar."""
        if self.bar is not None:
            self.bar.write(text)
        elif self.mode == "lines":
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def fmt(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"
