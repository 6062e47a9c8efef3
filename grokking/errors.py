"""The one error type for bad user input: its message names the bad value and what is allowed.

The entrypoints print it as a single line and exit non-zero instead of a traceback.
"""


class ConfigError(ValueError):
    pass
