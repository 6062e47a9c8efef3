"""Which config keys must agree for runs to be trained together in one pack.

Temporary: this table of the ``shape`` keys moves into the typed schema (grokking/schema.py),
and ``shape_signature`` will then read the roles from there. Until then this is the one place
that says which keys are shape keys; docs/packing.md lists them for users.

Keys not named here either may differ between members (seed, split, lr, wd, betas, op of the
same table shape, init, ...) or never change what is computed (steps, logger, device, ...).
"""
from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from grokking.ops import make_table

# Every key of these sections is a shape key, except the ones in MEMBER_KEYS_INSIDE.
SHAPE_SECTIONS = ("data", "model", "metrics")
MEMBER_KEYS_INSIDE = {"model.init", "model.init_scale"}
SHAPE_KEYS = ("p", "batch_size", "loss", "loss_dtype", "optimizer.name", "grokfast.name", "grokfast.window",
              "eval_every", "eval_schedule", "eval_per_decade", "deterministic", "compile")
TABLE_SHAPE = "op table (n_values, examples)"


def leaves(node, prefix: str):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, f"{prefix}.{key}")
    else:
        yield prefix, node


def table_shape(cfg: DictConfig):
    """(token values, examples) of the op's table, for arithmetic data: ops may differ inside a
    pack when their tables have the same shape (add and sub over the same p, say)."""
    if OmegaConf.select(cfg, "data.name") != "arithmetic":
        return None
    table = make_table(cfg.op, cfg.p)
    return table.n_values, len(table.labels)


def shape_signature(cfg: DictConfig) -> tuple:
    """((key, value), ...) of every shape key; two runs may share a pack iff their signatures are
    equal. Raises ConfigError when the op's table cannot be built (a bad op or p)."""
    pairs = [(key, OmegaConf.select(cfg, key, default=None)) for key in SHAPE_KEYS]
    for section in SHAPE_SECTIONS:
        node = OmegaConf.select(cfg, section, default=None)
        plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node
        pairs += [(k, v) for k, v in leaves(plain, section) if k not in MEMBER_KEYS_INSIDE]
    pairs.append((TABLE_SHAPE, table_shape(cfg)))
    return tuple((key, repr(value)) for key, value in sorted(pairs))


def first_difference(a: tuple, b: tuple) -> str | None:
    """The first shape key whose value differs between two signatures, as ``key: x vs y``."""
    theirs = dict(b)
    for key, value in a:
        if theirs.get(key, "<absent>") != value:
            return f"{key}: {value} vs {theirs.get(key, '<absent>')}"
    missing = [key for key in theirs if key not in dict(a)]
    return f"{missing[0]}: <absent> vs {theirs[missing[0]]}" if missing else None
