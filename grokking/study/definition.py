"""What a study is: its settings (the ``study:`` node, typed by ``grokking.schema.Study``) and its
grid (``hydra.sweeper.params``), as a study folder records them and as a study YAML gives them.

A study folder is the sweep folder of its grid, ``<out_dir>/studies/<study>_<scale>``; Hydra
writes the grid's config there (``multirun.yaml``) at every launch, so the folder alone says what
was asked, and the page can list the grid points that have no finished run.
"""
from __future__ import annotations

import itertools
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from grokking import schema
from grokking.errors import ConfigError
from grokking.study.outcomes import STEPS_TO

MULTIRUN = "multirun.yaml"  # Hydra's record of the grid's config, written in the sweep folder
TWO_KEY_FIGURES = ("heatmap", "phase")


def typed(node) -> DictConfig:
    """A study node (plain or from a file) as a ``schema.Study`` config: types checked, defaults filled."""
    try:
        return OmegaConf.merge(OmegaConf.structured(schema.Study), node)
    except OmegaConfBaseException as e:
        raise ConfigError(f"study: {' '.join(str(e).split())}") from None


def grid(params) -> dict[str, list[str]]:
    """{key: its values as the sweeper writes them into a job's overrides} of ``hydra.sweeper.params``."""
    lines = [f"{key}={value}" for key, value in (params or {}).items()]
    values = {}
    for o in OverridesParser.create().parse_overrides(lines):
        key = o.key_or_group.lstrip("+~")
        values[key] = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
    return values


def points(values: dict[str, list[str]]) -> list[dict[str, str]]:
    """Every combination of the grid's values: one dict per run of the grid."""
    keys = list(values)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(values[k] for k in keys))]


def check(study: DictConfig, values: dict[str, list[str]]) -> None:
    """The study's settings must fit its grid: one ConfigError line naming what does not."""
    swept = ", ".join(values) or "nothing"
    if study.x not in values:
        raise ConfigError(f"study.x={study.x} is not a key of the study's grid (hydra.sweeper.params: {swept})")
    if str(study.figure) in TWO_KEY_FIGURES:
        if study.y is None or study.y not in values:
            raise ConfigError(f"study.figure={study.figure} needs study.y, a second key of the grid "
                              f"(hydra.sweeper.params: {swept}); study.y={study.y}")
    if (str(study.outcome) in STEPS_TO or str(study.outcome) == "phase") and study.threshold is None:
        raise ConfigError(f"study.outcome={study.outcome} needs study.threshold (e.g. 0.99)")
    if str(study.outcome) == "phase" and str(study.figure) != "phase":
        raise ConfigError(f"study.outcome=phase is drawn as study.figure=phase, not {study.figure}")
    for ref in study.reference:
        if ref.group is not None and "=" not in ref.group:
            raise ConfigError(f"study.reference group={ref.group} is not key=value (e.g. op=div)")


def load(folder: Path) -> tuple[DictConfig, dict[str, list[str]], str]:
    """(study, grid, scale) of a study folder."""
    path = Path(folder) / MULTIRUN
    if not path.is_file():
        raise ConfigError(f"{folder} is not a study folder: it has no {MULTIRUN} "
                          "(run the grid first: python -m grokking.train -m study=<name>)")
    cfg = OmegaConf.load(path)
    if OmegaConf.select(cfg, "study") is None:
        raise ConfigError(f"{folder} holds a grid without a study (its {MULTIRUN} has study: null); "
                          "python -m grokking.report shows a grid's runs")
    study = typed(cfg.study)
    values = grid(OmegaConf.select(cfg, "hydra.sweeper.params"))
    check(study, values)
    return study, values, str(OmegaConf.select(cfg, "scale", default="paper"))
