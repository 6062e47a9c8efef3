"""Packed sweeps: the runs of a grid trained side by side as one batched model.

``engine.PackedRun`` holds the pack (stacked weights, batched optimizer and Grokfast filter, each
member's minibatches); ``stacked`` has the batched forwards, ``optim`` the batched optimizers,
``sizing`` how many members to pack on a device. Figures: docs/packing_speed.md.
"""
