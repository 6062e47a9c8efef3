"""The report of a run or of a sweep: one self-contained, interactive HTML page (plotly).

    python -m grokking.report runs/default              # -> runs/default/report.html
    python -m grokking.report runs/sweeps/wd_grid       # -> a report per run, and the sweep's page

Layout: ``cache`` reads a run's checkpoints into numbers (cached beside the record), ``tabs/``
turns them into plotly figures (one module per tab), ``page`` writes the HTML, ``sweep`` the sweep
page, ``cli`` the command line. Nothing here trains or changes a run.
"""

DEFAULT_SNAPSHOTS = 40  # at most this many checkpoints on a report's sliders (--snapshots)
