"""The sparse parity task (``data=parity``): ``samples`` distinct strings of ``n_bits`` random bits,
each labelled by the parity (XOR) of the same ``k`` of its bits; the other bits are noise.

Barak, Edelman, Goel, Kakade, Malach & Zhang (2022, "Hidden Progress in Deep Learning: SGD Learns
Parities Near the Computational Limit") study it as a task learned after a long plateau; Prieto,
Barsbey, Mediano & Birdal (2025, "Grokking at the Edge of Numerical Stability", Figure 4) grok it
with StableMax: 3 parity bits among 40 noise bits, 2000 samples (their datasets.py
``SparseParityDataset``). Their relevant bits are the first k; here ``data.seed`` chooses them, and
the strings, so that a data set's seed is one number (any k bits are the same task up to a
permutation of the inputs).
"""
from __future__ import annotations

import numpy as np

from grokking.errors import ConfigError


def distinct_bit_strings(rng: np.random.Generator, n_bits: int, count: int) -> np.ndarray:
    """(count, n_bits) int8 rows of uniform random bits, no row twice, in the order first drawn."""
    rows = np.empty((0, n_bits), dtype=np.int8)
    while len(rows) < count:
        rows = np.concatenate([rows, rng.integers(0, 2, size=(count, n_bits), dtype=np.int8)])
        _, first = np.unique(rows, axis=0, return_index=True)
        rows = rows[np.sort(first)]
    return rows[:count]


def sparse_parity(data_cfg) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(bits, labels, relevant): the strings, their parity labels and the k relevant bit indices."""
    n, k, samples = data_cfg.n_bits, data_cfg.k, data_cfg.samples
    if k > n:
        raise ConfigError(f"data.k={k} is more than data.n_bits={n}; allowed: k <= n_bits")
    if n < 63 and samples > 2**n:
        raise ConfigError(f"data.samples={samples} is more than the {2**n} distinct strings of {n} bits; "
                          f"allowed: samples <= 2**n_bits")
    rng = np.random.default_rng(data_cfg.seed)
    relevant = np.sort(rng.choice(n, size=k, replace=False))
    bits = distinct_bit_strings(rng, n, samples)
    return bits, (bits[:, relevant].sum(axis=1) % 2).astype(np.int64), relevant
