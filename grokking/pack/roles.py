"""Which runs may be trained together in one pack: those that agree on every shape key of the
schema (grokking/schema.py) and on the shape of their op's table (add and sub over one p may
share a pack; div, which drops b = 0, has fewer examples and may not)."""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from grokking import schema
from grokking.ops import make_table

TABLE_SHAPE = "op table (n_values, examples)"


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
