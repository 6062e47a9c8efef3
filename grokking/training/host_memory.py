"""Keep freed host memory in the process, so that a CPU training step does not fault its
activations in afresh from the kernel every time.

glibc's malloc serves blocks above its mmap threshold (128 KiB at first) straight from the kernel
and gives the top of its heap back when more than the trim threshold is free. A step's activations
are such blocks (a member of the default MLP at p 47 holds several of 2.2 MB each), so every step
mapped new pages, each zero-filled by the kernel on first touch: about 9,000 page faults per step
for a pack of 8, a quarter to a third of its time. Raising the mmap threshold to glibc's largest
(32 MiB; larger blocks stay mmapped, which is why the pack steps in member chunks below that,
grokking/training/engines/packed.py) and the trim threshold to 1 GiB keeps the pages for the next
step. Measured on this project's 2-core CPU (docs/packing_speed.md): the default MLP's solo step at
p 47 from 4.0 to 3.3 ms, a pack of 8 from 31 to 22 ms. The cost: up to 1 GiB freed by the process
stays with it until it exits.
"""
from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
MMAP_THRESHOLD = 32 * 2**20  # glibc refuses more (half its largest heap)
TRIM_THRESHOLD = 2**30


def keep_freed_memory() -> bool:
    """Set the two thresholds where the C library is glibc; True if it took them. Elsewhere
    (macOS, musl) nothing changes."""
    if not sys.platform.startswith("linux"):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
