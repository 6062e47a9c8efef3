"""CPU cost of each grokking.inspect analysis on a nanda2023-sized transformer (p 113, d_mlp 512) and
a he2025-sized MLP, at initialisation (the cost does not depend on the weights).

    python scripts/bench_inspect.py [--threads 1] [--repeat 3]

Reports CPU time per call (process time, so a machine shared with other jobs does not inflate it)
in milliseconds; with one thread that is the single-core cost. The model's own forward pass over
the p² table is listed first for scale: the report runs it once per checkpoint anyway.
"""
from __future__ import annotations

import argparse
import time

import torch

from grokking.config import compose_config
from grokking.data import build_dataset
from grokking.inspect import attention, fourier, mechanism, neurons, progress
from grokking.models import build_model


def cpu_ms(function, repeat: int) -> float:
    function()  # warm-up: first-call allocations and lazy imports
    start = time.process_time()
    for _ in range(repeat):
        function()
    return (time.process_time() - start) / repeat * 1000


def model_of(overrides):
    cfg = compose_config(overrides)
    data = build_dataset(cfg)
    torch.manual_seed(0)
    return cfg, build_model(cfg, data).eval(), data


@torch.no_grad()
def transformer_cases():
    cfg, model, data = model_of(["experiment=nanda2023"])
    p, x = data.modulus, data.inputs
    acts = neurons.neuron_activations(model, x)
    grid = neurons.activation_grid(acts, x, p)
    (pattern,) = attention.attention_patterns(model, x)
    logits = model(x)
    return {
        "forward over p^2 (for scale)": lambda: model(x),
        "model_spectrum": lambda: fourier.model_spectrum(model, p),
        "model_circles (4 freqs)": lambda: fourier.model_circles(model, p, [17, 25, 32, 47]),
        "model_principal_circle": lambda: fourier.model_principal_circle(model, p),
        "neuron_activations": lambda: neurons.neuron_activations(model, x),
        "neuron_frequencies": lambda: neurons.neuron_frequencies(acts, x, p),
        "activation_grid": lambda: neurons.activation_grid(acts, x, p),
        "fourier_2d (512 neurons)": lambda: neurons.fourier_2d(grid, p),
        "sum_share": lambda: fourier.sum_share(grid, p, 17),
        "readout_fourier": lambda: neurons.readout_fourier(neurons.neuron_to_logit(model), p),
        "attention_patterns": lambda: attention.attention_patterns(model, x),
        "attention_map + mean_pattern": lambda: (attention.attention_map(pattern, x, p), attention.mean_pattern(pattern)),
        "cos_coefficients": lambda: progress.cos_coefficients(progress.logit_cube(logits, x, p), p),
        "restricted_excluded (with its forward)": lambda: progress.restricted_excluded(cfg, model, data, [17, 25, 32, 47]),
    }


def mlp_cases():
    cfg, model, data = model_of(["experiment=he2025"])
    p, (maps, readout) = data.modulus, mechanism.mlp_maps(model)
    return {
        f"neuron_ipr (MLP p={p})": lambda: mechanism.neuron_ipr(maps, p),
        "phase_alignment": lambda: mechanism.phase_alignment(maps, readout, p),
        "lottery": lambda: mechanism.lottery(maps, maps, p),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name, function in {**transformer_cases(), **mlp_cases()}.items():
        print(f"{name:42s} {cpu_ms(function, args.repeat):8.1f} ms")


if __name__ == "__main__":
    main()
