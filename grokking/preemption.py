"""Turn stop signals into a flag that the training loop checks between steps.

A signal can arrive in the middle of an optimizer step; saving there would store a half-updated
model. So the handler only records the signal; the loop saves a checkpoint at the next step
boundary and then hands the signal to whoever handled it before (submitit requeues the job on
SIGUSR2; the default SIGTERM ends the process; SIGINT raises KeyboardInterrupt).
"""
from __future__ import annotations

import os
import signal

SIGNALS = (signal.SIGTERM, signal.SIGUSR2, signal.SIGINT)


class StopSignals:
    def __init__(self):
        self.received: int | None = None
        self.previous = {}

    def __enter__(self):
        for sig in SIGNALS:
            self.previous[sig] = signal.signal(sig, self.handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def handle(self, signum, frame):
        self.received = signum

    def forward(self) -> None:
        """Pass the received signal on to the handler installed before ours, then clear it."""
        signum, self.received = self.received, None
        previous = self.previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, None)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
