"""Packed sweeps: the runs of a ``-m`` grid trained together, several per process.

``roles`` says which runs may share a pack, ``launch`` groups a grid into packs and runs them
under the launchers, ``sizing`` says how many members pay on a device, ``bench`` times packed
against unpacked grids. The training itself is the one loop's (grokking/training): a pack is
trained by ``training.engines.packed.PackedRun``. Figures: docs/packing_speed.md.
"""
