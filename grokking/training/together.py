"""Which runs may be trained together (a pack, grokking/training/loop.py): those that agree on
every shape key of the schema (grokking/schema.py), on the shape of their op's table (add and sub
over one p may share a pack; div, which drops b = 0, has fewer examples and may not), and on the
settings of the process that trains them (``PACK_SETTINGS``)."""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from grokking import schema
from grokking.errors import ConfigError
from grokking.ops import make_table

TABLE_SHAPE = "op table (n_values, examples)"
# runtime keys that are one process's, so one pack's: its device, CPU threads and progress display
PACK_SETTINGS = ("device", "threads", "progress", "progress_every_s")


def table_shape(cfg: DictConfig):
    """(token values, examples) of the op's table, for arithmetic data; None for other data."""
    if OmegaConf.select(cfg, "data.name") != "arithmetic":
        return None
    table = make_table(cfg.op, cfg.p)
    return table.n_values, len(table.labels)


def shape_signature(cfg: DictConfig) -> tuple:
    """((key, value), ...) of every shape key; two runs may share a pack iff their signatures are
    equal. Raises ConfigError when the op's table cannot be built (a bad op or p)."""
    pairs = schema.values_by_role(schema.plain(cfg), schema.SHAPE)
    pairs[TABLE_SHAPE] = table_shape(cfg)
    return tuple((key, repr(value)) for key, value in sorted(pairs.items()))


def first_difference(a: tuple, b: tuple) -> str | None:
    """The first shape key whose value differs between two signatures, as ``key: x vs y``."""
    theirs = dict(b)
    for key, value in a:
        if theirs.get(key, "<absent>") != value:
            return f"{key}: {value} vs {theirs.get(key, '<absent>')}"
    missing = [key for key in theirs if key not in dict(a)]
    return f"{missing[0]}: <absent> vs {theirs[missing[0]]}" if missing else None


def pack_settings(cfg: DictConfig) -> tuple:
    return tuple((key, str(cfg[key])) for key in PACK_SETTINGS)


def check_together(cfgs: list[DictConfig]) -> None:
    """Runs trained together must agree on every shape key and on the process settings."""
    if not cfgs:
        raise ConfigError("a pack needs at least one run")
    first, settings = shape_signature(cfgs[0]), pack_settings(cfgs[0])
    for cfg in cfgs[1:]:
        shape = first_difference(first, shape_signature(cfg))
        setting = first_difference(settings, pack_settings(cfg))
        if shape or setting:
            what = f"the shape key {shape}" if shape else f"the process setting {setting}"
            raise ConfigError(f"runs of one pack differ in {what}; runs trained together must agree on every "
                              f"shape key and on {', '.join(PACK_SETTINGS)} (docs/packing.md)")
