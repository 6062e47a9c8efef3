"""Progress display: a bar on a terminal, a plain line every few seconds in batch logs.

Lines and milestones go through Python logging (logger ``grokking.progress``), so that Hydra's
job logging writes them to the console and to ``<run>/train.log``; the console handler of
grokking's job logging (``ConsoleHandler``) writes above an active bar instead of through it.
"""
from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger(__name__)


class Progress:
    """``mode``: bar, lines, none, or auto (a bar when stderr is a terminal, else lines).

    Under SLURM stderr is a file, where a bar would write a line per refresh; ``lines`` logs at
    most one line every ``every_s`` seconds instead, plus the last one. Milestones are logged in
    every mode but ``none``.
    """

    def __init__(self, mode: str, total: int, start: int, every_s: float):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "lines"
        self.mode, self.total, self.every_s = str(mode), total, every_s
        self.last_line = 0.0
        self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True) if mode == "bar" else None

    def update(self, step: int, record: dict, final: bool = False) -> None:
        text = f"train {record['train/acc']:.3f}  val {fmt(record['val/acc'])}"
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix_str(text, refresh=False)
        elif self.mode == "lines" and (final or time.monotonic() - self.last_line >= self.every_s):
            self.last_line = time.monotonic()
            log.info("step %d/%d  %s  train_loss %.3g", step, self.total, text, record["train/loss"])

    def note(self, text: str) -> None:
        """A one-off line (a milestone) that stays visible above the bar."""
        if self.mode != "none":
            log.info(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class ConsoleHandler(logging.StreamHandler):
    """A logging handler that writes through tqdm, above a progress bar when one is shown."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # noqa: BLE001 - logging must never stop training
            self.handleError(record)


def fmt(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.3f}"
