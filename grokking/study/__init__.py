"""Studies: a paper's question over a grid, answered in one command and drawn beside its numbers.

    python -m grokking.train -m study=nanda_frac [scale=smoke]   # the grid (a rerun trains only what is missing)
    python -m grokking.study runs/studies/nanda_frac_smoke        # its page again, from the folder

A study is one YAML in conf/study (its base preset, its grid as ``hydra.sweeper.params``, and a
``study:`` node typed by ``grokking.schema.Study``: the x key, the outcome, the figure, the
published points). ``definition`` reads a study folder (the study and its grid), ``outcomes``
turns a run's record into the study's outcome, ``aggregate`` gathers the runs of each grid point
(median and spread over seeds, runs that never reached the outcome, missing runs) and writes the
CSV, ``figure`` draws the paper's figure with the published points, ``page`` writes the page (and
logs it to W&B where the grid logs there), ``cli`` is the command line. Nothing here trains.
"""
