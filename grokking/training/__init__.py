"""Training: one loop for a solo run and for a pack of runs.

    loop.py      the loop; ``train(cfg, run_dir)`` and ``train_runs(cfgs, run_dirs)``
    run.py       ``Run``: one run's record, history, milestones, status, logger and report
    engines/     what holds the models: ``solo`` (one module), ``packed`` (stacked members)
    device.py, loss.py, evaluate.py, batches.py, weights.py
                 the pieces every engine and every view shares
"""
