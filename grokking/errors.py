"""The outcomes that end a run without a traceback: bad user input (``ConfigError``, whose
message names the bad value and what is allowed), a run whose loss left the finite numbers
(``Diverged``, a normal outcome of an lr x wd grid) and a full disk (``NoSpace``). The
entrypoints print each as one line and exit non-zero (``EXIT_CODES``).
"""


class ConfigError(ValueError):
    pass


class Diverged(ArithmeticError):
    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step  # where the loss left the finite numbers


class NoSpace(OSError):
    """A record file could not be written for lack of room; the message names the file."""


EXIT_CODES = {ConfigError: 2, NoSpace: 2, Diverged: 3}  # of an entrypoint that stops on each


def one_line(error: Exception, run: str | None = None) -> str:
    """``grokking: error: ...`` for bad input, ``grokking: diverged: ...``; ``run`` names the run
    where several train in one process."""
    kind = "diverged" if isinstance(error, Diverged) else "error"
    return f"grokking: {kind}: {error}" + (f" (run {run})" if run else "")
