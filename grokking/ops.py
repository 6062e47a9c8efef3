"""Binary and three-operand operations whose full tables are the data sets.

Each modular op is one line: a function of integer arrays ``a, b`` (and ``c`` for three operands;
values in [0, p)) and the modulus ``p`` that returns ``(labels, keep)``: the answer in [0, p) for
every tuple, and a mask of the tuples that belong to the table (division drops y = 0).
Intermediate values are reduced mod p at every product, so no op overflows int64 for any p < 2**31.
"""
from __future__ import annotations

import ast
import itertools
import operator
from dataclasses import dataclass

import numpy as np

from grokking.errors import ConfigError



def inverse(x: np.ndarray, p: int) -> np.ndarray:
    """Multiplicative inverse mod a prime p (Fermat); 0 maps to 0 and must be masked out."""
    return power(x, p - 2, p)


def power(x: np.ndarray, e: int, p: int) -> np.ndarray:
    """x**e mod p by square-and-multiply, reducing after each product (no overflow)."""
    result = np.ones_like(x) % p
    base = x % p
    while e > 0:
        if e & 1:
            result = result * base % p
        base = base * base % p
        e >>= 1
    return result


ALL = None  # keep every pair

MODULAR_OPS = {
    "add": lambda a, b, p: ((a + b) % p, ALL),
    "sub": lambda a, b, p: ((a - b) % p, ALL),
    "mul": lambda a, b, p: (a * b % p, ALL),
    "div": lambda a, b, p: (a * inverse(b, p) % p, b != 0),
    # Power et al. (2022), table 1:
    "div_odd_else_sub": lambda a, b, p: (np.where(b % 2 == 1, a * inverse(b, p) % p, (a - b) % p), ALL),
    "x2_y2": lambda a, b, p: ((a * a + b * b) % p, ALL),
    "x2_xy_y2": lambda a, b, p: ((a * a + a * b + b * b) % p, ALL),
    "x2_xy_y2_x": lambda a, b, p: ((a * a + a * b + b * b + a) % p, ALL),
    "x3_xy": lambda a, b, p: ((a * a % p * a + a * b) % p, ALL),
    "x3_xy2_y": lambda a, b, p: ((a * a % p * a + a * (b * b % p) + b) % p, ALL),
    "x2_y": lambda a, b, p: ((a * a + b) % p, ALL),
    "x3_y": lambda a, b, p: ((a * a % p * a + b) % p, ALL),
}

# Three operands, the open direction of seed 000 (section 9.1: "(a + b + c) mod p"): p**3 rows.
THREE_OPERAND_OPS = {
    "add3": lambda a, b, c, p: ((a + b + c) % p, ALL),
}
# The largest p of a three-operand table (p**3 rows). Measured with the default MLP (width 512, full
# batch, default metrics): about 9 kB per row at the peak (the evaluation's features of every row
# and the feature rank's float64 copy), 4.5 GB at p 79; p 113 needs about 13 GB, p 127 about 18 GB
# (docs/methods.md).
MAX_THREE_OPERAND_P = 113

S5_OPS = {
    "s5_xy": lambda x, y: compose(x, y),
    "s5_xyx_inv": lambda x, y: compose(compose(x, y), invert(x)),
    "s5_xyx": lambda x, y: compose(compose(x, y), x),
}


def compose(x: tuple, y: tuple) -> tuple:
    """Permutation product x·y, applying y first: (x·y)(i) = x(y(i))."""
    return tuple(x[i] for i in y)


def invert(x: tuple) -> tuple:
    out = [0] * len(x)
    for i, xi in enumerate(x):
        out[xi] = i
    return tuple(out)


@dataclass(frozen=True)
class Table:
    """The full table of an operation: operand tuples, labels, and the number of token values."""

    operands: np.ndarray  # (rows, 2 or 3) int64
    labels: np.ndarray
    n_values: int  # operands and labels are in [0, n_values)


def op_names() -> list[str]:
    return sorted([*MODULAR_OPS, *THREE_OPERAND_OPS, *S5_OPS, "pow_mn", "expr", "expr3"])


def make_table(op_cfg, p: int) -> Table:
    """Build the table of ``op_cfg.name`` (with ``m, n`` for pow_mn, ``expr`` for expr and expr3)."""
    name = op_cfg.name
    if name in S5_OPS:
        return s5_table(S5_OPS[name])
    if p < 2:
        raise ConfigError(f"p={p} is too small: the modulus must be an integer >= 2")
    if name in NEEDS_PRIME or (name in ("expr", "expr3") and "/" in str(op_cfg.expr)):
        check_prime(name, p)
    operands = 3 if name in (*THREE_OPERAND_OPS, "expr3") else 2
    if operands == 3 and p > MAX_THREE_OPERAND_P:
        raise ConfigError(f"p={p} makes op {name}'s table {p}**3 = {p**3} rows, about {9e-6 * p**3:.0f} GB "
                          f"for the default MLP (docs/methods.md); allowed: p <= {MAX_THREE_OPERAND_P} for three operands")
    if name == "pow_mn":
        fn = pow_mn(int(op_cfg.m), int(op_cfg.n))
    elif name in ("expr", "expr3"):
        fn = parse_expr(op_cfg.expr, ("a", "b", "c")[:operands])
    elif name in MODULAR_OPS:
        fn = MODULAR_OPS[name]
    elif name in THREE_OPERAND_OPS:
        fn = THREE_OPERAND_OPS[name]
    else:
        raise ConfigError(f"unknown op '{name}'; allowed: {', '.join(op_names())}")
    return modular_table(fn, p, operands)


NEEDS_PRIME = {"div", "div_odd_else_sub"}


def check_prime(name: str, p: int) -> None:
    """Division mod p is only defined for every non-zero divisor when p is prime."""
    if any(p % d == 0 for d in range(2, int(p**0.5) + 1)):
        raise ConfigError(f"op {name} divides, so p must be prime; p={p} is not")


def modular_table(fn, p: int, n_operands: int = 2) -> Table:
    """Every tuple of ``n_operands`` values in [0, p), the first operand slowest."""
    grid = np.meshgrid(*[np.arange(p, dtype=np.int64)] * n_operands, indexing="ij")
    operands = np.stack([v.ravel() for v in grid], axis=1)
    labels, keep = fn(*operands.T, p)
    labels = np.asarray(labels, dtype=np.int64) % p
    if keep is not None:
        operands, labels = operands[keep], labels[keep]
    return Table(operands=operands, labels=labels, n_values=p)


def pow_mn(m: int, n: int):
    """(a^m + b^n) mod p for any exponents m, n >= 0 (seed 004 overflowed int64 past 9)."""
    if m < 0 or n < 0:
        raise ConfigError(f"pow_mn needs exponents m, n >= 0, got m={m}, n={n}")
    return lambda a, b, p: ((power(a, m, p) + power(b, n, p)) % p, ALL)


def s5_table(fn) -> Table:
    perms = list(itertools.permutations(range(5)))
    index = {perm: i for i, perm in enumerate(perms)}
    pairs = [(i, j) for i in range(len(perms)) for j in range(len(perms))]
    labels = np.array([index[fn(perms[i], perms[j])] for i, j in pairs], dtype=np.int64)
    return Table(operands=np.array(pairs, dtype=np.int64), labels=labels, n_values=len(perms))


# --- user-defined expressions: a safe evaluator over a whitelist of AST nodes -------------------

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def expr_help(names: tuple[str, ...]) -> str:
    return f"use {', '.join(names)}, integers, + - * /, ** with a non-negative integer exponent, and parentheses"


def parse_expr(text, names: tuple[str, ...] = ("a", "b")) -> callable:
    """Compile an expression like ``a*a + a*b`` into a modular op of the operands ``names``
    (``a, b``, or ``a, b, c`` for expr3), refusing anything else.

    Only those names, integer constants, ``+ - * /``, ``**`` with a constant exponent, unary
    minus and parentheses are accepted; ``/`` multiplies by the modular inverse and drops the
    tuples whose divisor is 0 mod p. Nothing is ever passed to ``eval``.
    """
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"op.expr={text!r} is empty; {expr_help(names)}")
    try:
        tree = ast.parse(text, mode="eval").body
    except SyntaxError:
        raise ConfigError(f"op.expr={text!r} is not a valid expression; {expr_help(names)}") from None
    _check(tree, text, names)
    return lambda *values: _evaluate(tree, dict(zip(names, values[:-1])), values[-1])


def _check(node, text: str, names: tuple[str, ...]) -> None:
    ok = (
        isinstance(node, ast.Name) and node.id in names
        or isinstance(node, ast.Constant) and type(node.value) is int
        or isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd))
        or isinstance(node, ast.BinOp) and isinstance(node.op, (*_BINARY, ast.Div, ast.Pow))
    )
    if not ok:
        raise ConfigError(f"op.expr={text!r}: '{ast.unparse(node)}' is not allowed; {expr_help(names)}")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        exponent = node.right
        if not (isinstance(exponent, ast.Constant) and type(exponent.value) is int and exponent.value >= 0):
            raise ConfigError(f"op.expr={text!r}: exponent '{ast.unparse(exponent)}' must be a non-negative integer")
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, (ast.operator, ast.unaryop, ast.expr_context)):
            _check(child, text, names)


def _evaluate(node, names: dict, p: int):
    """Return (values mod p, keep-mask or None) for a checked expression tree."""
    if isinstance(node, ast.Name):
        return names[node.id] % p, None
    if isinstance(node, ast.Constant):
        return np.full_like(names["a"], node.value % p), None
    if isinstance(node, ast.UnaryOp):
        value, keep = _evaluate(node.operand, names, p)
        return (-value if isinstance(node.op, ast.USub) else value) % p, keep
    left, keep_left = _evaluate(node.left, names, p)
    if isinstance(node.op, ast.Pow):
        return power(left, node.right.value, p), keep_left
    right, keep_right = _evaluate(node.right, names, p)
    keep = _both(keep_left, keep_right)
    if isinstance(node.op, ast.Div):
        return left * inverse(right, p) % p, _both(keep, right != 0)
    return _BINARY[type(node.op)](left, right) % p, keep


def _both(x, y):
    if x is None:
        return y
    return x if y is None else x & y
