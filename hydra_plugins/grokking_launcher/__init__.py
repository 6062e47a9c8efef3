"""Hydra plugin package of grokking: launchers must live under ``hydra_plugins`` for Hydra to
accept them; the code is in grokking/launcher.py."""
