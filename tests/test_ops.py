"""Operation tables are exact; bad ops and expressions fail with a clear message."""
import itertools

import numpy as np
import pytest
from omegaconf import OmegaConf

from grokking.errors import ConfigError
from grokking.ops import make_table, op_names


def table(name, p=7, **extra):
    return make_table(OmegaConf.create({"name": name, **extra}), p)


def as_dict(t):
    return {(int(a), int(b)): int(c) for (a, b), c in zip(t.operands, t.labels)}


@pytest.mark.parametrize("name, fn", [
    ("add", lambda a, b, p: (a + b) % p),
    ("sub", lambda a, b, p: (a - b) % p),
    ("mul", lambda a, b, p: a * b % p),
    ("x2_y2", lambda a, b, p: (a**2 + b**2) % p),
    ("x2_xy_y2", lambda a, b, p: (a**2 + a * b + b**2) % p),
    ("x2_xy_y2_x", lambda a, b, p: (a**2 + a * b + b**2 + a) % p),
    ("x3_xy", lambda a, b, p: (a**3 + a * b) % p),
    ("x3_xy2_y", lambda a, b, p: (a**3 + a * b**2 + b) % p),
    ("x2_y", lambda a, b, p: (a**2 + b) % p),
    ("x3_y", lambda a, b, p: (a**3 + b) % p),
])
def test_modular_tables_match_python(name, fn):
    p = 11
    got = as_dict(table(name, p))
    assert got == {(a, b): fn(a, b, p) for a in range(p) for b in range(p)}


def test_division_excludes_zero_and_inverts():
    p = 13
    got = as_dict(table("div", p))
    assert len(got) == p * (p - 1)
    assert all(b != 0 and (c * b) % p == a for (a, b), c in got.items())


def test_div_odd_else_sub():
    p = 11
    got = as_dict(table("div_odd_else_sub", p))
    for (a, b), c in got.items():
        assert c == ((a * pow(b, -1, p)) % p if b % 2 else (a - b) % p)


def test_pow_mn_has_no_overflow_for_large_exponents():
    p = 113
    got = as_dict(table("pow_mn", p, m=10, n=37))
    assert got == {(a, b): (pow(a, 10, p) + pow(b, 37, p)) % p for a in range(p) for b in range(p)}


def test_s5_tables_are_group_operations():
    t = table("s5_xy")
    assert t.n_values == 120 and len(t.labels) == 120 * 120
    perms = list(itertools.permutations(range(5)))
    got = as_dict(t)
    identity = perms.index(tuple(range(5)))
    assert all(got[(identity, j)] == j and got[(j, identity)] == j for j in range(120))
    conj = as_dict(table("s5_xyx_inv"))
    assert all(conj[(i, identity)] == identity for i in range(120))  # x e x^-1 = e
    # every row of a group table is a permutation of the group
    labels = np.array(t.labels).reshape(120, 120)
    assert all(len(set(row)) == 120 for row in labels)


def test_expression_op_is_parsed_safely():
    p = 11
    got = as_dict(table("expr", p, expr="a*a + a*b - 3"))
    assert got == {(a, b): (a * a + a * b - 3) % p for a in range(p) for b in range(p)}
    power = as_dict(table("expr", p, expr="(a + b)**3 / b"))
    assert len(power) == p * (p - 1)
    assert all(c == (a + b) ** 3 * pow(b, -1, p) % p for (a, b), c in power.items())


@pytest.mark.parametrize("expr, words", [
    ("__import__('os').system('true')", "is not allowed"),
    ("a.real", "is not allowed"),
    ("a +", "not a valid expression"),
    ("a ** b", "exponent 'b'"),
    ("c * a", "'c' is not allowed"),
    ("", "empty"),
])
def test_bad_expressions_are_refused(expr, words):
    with pytest.raises(ConfigError, match="op.expr") as err:
        table("expr", 11, expr=expr)
    assert words in str(err.value)


def test_unknown_op_and_non_prime_division():
    with pytest.raises(ConfigError, match="unknown op 'pow'.*allowed: add"):
        table("pow")
    with pytest.raises(ConfigError, match="p=12 is not"):
        table("div", 12)
    assert {"add", "div", "s5_xy", "pow_mn", "expr"} <= set(op_names())
