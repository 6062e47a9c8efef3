"""Packed sweeps: the runs of a ``-m`` grid trained together, several per process.

``launch`` groups a grid into packs (by grokking/training/together.py: which runs may share one)
and runs them under the launchers; ``sizing`` says how many members pay on a device. The
training itself is the one loop's (grokking/training): a pack is trained by
``training.engines.packed.PackedRun``. Figures: docs/packing_speed.md (scripts/bench_pack.py).
"""
