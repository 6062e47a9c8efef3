"""Engines: what trains the models of one loop (grokking/training/loop.py).

An engine holds the models, optimizers, Grokfast filters and minibatches of the runs it trains
and offers the loop one interface, whatever it does inside:

    len(engine)                    the number of runs (members)
    engine.datasets[i]             run i's data set on the device, as its solo run builds it
    engine.step(active, grad_norms)  one optimizer step of every active run
    engine.grad_norms[i]           run i's gradient norms of the last step that asked for them
    engine.evaluate(idx, features) per run in idx: (values, logits, features) of one evaluation
    engine.model_of(i)             a solo module holding run i's current weights
    engine.member_state(i)         run i's training state in the solo checkpoint's format
    engine.load_member_state(i, s) the inverse, from a solo checkpoint

``solo.SoloEngine`` trains one run through its own module (the plain path, fastest for one);
``packed.PackedRun`` trains several runs of one shape as one batched model. Both build each run
with ``build.build_member``, so a run starts from the same weights, split and batches whichever
engine trains it, and both read and write the same checkpoint format, so a run moves between
them on resume.
"""
from __future__ import annotations


def build_engine(members: list, device):
    """The engine for these built members (``build.Member``): one run trains on its own module."""
    if len(members) == 1:
        from grokking.training.engines.solo import SoloEngine

        return SoloEngine(members[0], device)
    from grokking.training.engines.packed import PackedRun

    return PackedRun(members, device)
