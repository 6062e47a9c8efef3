"""The two outcomes that end a run without a traceback: bad user input (``ConfigError``, whose
message names the bad value and what is allowed) and a run whose loss left the finite numbers
(``Diverged``, a normal outcome of an lr x wd grid). The entrypoints print either as one line
and exit non-zero (2 and 3).
"""


class ConfigError(ValueError):
    pass


class Diverged(ArithmeticError):
    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step  # where the loss left the finite numbers
