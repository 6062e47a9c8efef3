"""Analyses of a trained model's internals for the report: pure functions of tensors (token maps,
activations over the whole p x p table, logits, weights) plus thin adapters that read those off
grokking.models' MLP and Transformer. One module per view:

    fourier    the embedding's spectrum, circles per frequency, the addition theorem
    neurons    activations over (a, b), their 2-D Fourier transforms and frequencies, the readout
    attention  attention patterns from "=" per head (transformers)
    progress   the logits' cosine coefficients; restricted/excluded loss through grokking.metrics
    mechanism  per-neuron IPR, phase alignment and the lottery ticket (one-hidden-layer MLPs)
    load       a run's model, config and data from a run folder or checkpoint; its step-0 model
"""
