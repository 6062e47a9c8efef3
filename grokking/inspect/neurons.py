"""The neurons over the whole table: activations over (a, b), their 2-D Fourier transforms, each
neuron's frequency, and the readout in the Fourier basis (Nanda et al. 2023, "Progress measures
for grokking via mechanistic interpretability", section 4 and appendix).

The pure functions take a (N, units) table of activations with the (N, 2) operand ids it was
computed on; the adapters read the neurons of our models: an MLP's first hidden layer, a
transformer's first MLP at the last position.
"""
from __future__ import annotations

import torch

from grokking.metrics.fourier import fourier_basis
from grokking.metrics.progress_measures import variance_explained
from grokking.models import Transformer


def activation_grid(acts: torch.Tensor, inputs: torch.Tensor, p: int) -> torch.Tensor:
    """(units, p, p): unit j's activation at (a, b) in [j, a, b]."""
    grid = acts.new_zeros(p, p, acts.shape[1])
    grid[inputs[:, 0], inputs[:, 1]] = acts
    return grid.permute(2, 0, 1)


def fourier_2d(grid: torch.Tensor, p: int) -> torch.Tensor:
    """(units, p, p): B G B^T per unit, the 2-D Fourier coefficients over (a, b); rows and columns
    follow the basis (0 constant, 2k-1 cos k, 2k sin k)."""
    units, basis = grid.shape[0], fourier_basis(p, grid.dtype, grid.device)
    over_a = basis @ grid.permute(1, 0, 2).reshape(p, units * p)  # two large products, not p x p ones per unit
    return (over_a.reshape(p * units, p) @ basis.T).reshape(p, units, p).permute(1, 0, 2)


def neuron_frequencies(acts: torch.Tensor, inputs: torch.Tensor, p: int) -> dict:
    """Each neuron's frequency: the k whose block {1, cos k, sin k} x {1, cos k, sin k} explains
    most of its centred variance over the table (Nanda et al.'s "fraction explained by one
    frequency"). Returns shares (units, K), freq (units,) 1..K and share (units,) of that k."""
    shares = variance_explained(acts.float(), inputs, p)
    best_share, best = shares.max(dim=1)
    return {"shares": shares, "freq": best + 1, "share": best_share}


def frequency_clusters(freq: torch.Tensor, share: torch.Tensor, min_share: float = 0.85) -> dict:
    """Neurons grouped by frequency: {k: [neuron ids]} for the neurons whose frequency explains at
    least ``min_share`` of their variance (Nanda et al. use 0.85), largest group first, and
    ``None``: the rest."""
    clusters: dict = {}
    for neuron, (k, s) in enumerate(zip(freq.tolist(), share.tolist())):
        clusters.setdefault(k if s >= min_share else None, []).append(neuron)
    return dict(sorted(clusters.items(), key=lambda item: (item[0] is None, -len(item[1]))))


def readout_fourier(neuron_to_logit: torch.Tensor, p: int) -> dict:
    """The map from neurons to logits (units, p classes) in the Fourier basis over the classes:
    component_norms (p,), the norm over neurons of each basis component (Nanda et al.'s "W_logit
    in the Fourier basis"), and share (K,), each frequency's share of the non-constant power."""
    norms = (neuron_to_logit.double() @ fourier_basis(p).T).norm(dim=0)
    power = norms[1:].square().view(-1, 2).sum(dim=1)
    return {"component_norms": norms, "share": power / power.sum().clamp(min=torch.finfo(power.dtype).tiny)}


@torch.no_grad()
def neuron_activations(model, inputs: torch.Tensor) -> torch.Tensor:
    """(N, units) post-activations of the first layer of neurons: an MLP's first hidden layer, a
    transformer's first block's MLP at the last position (whatever the readout; the forward pass
    stops there)."""
    if not isinstance(model, Transformer):
        return model.act(model(inputs, features=True)[1]["layer1"])
    block = model.blocks[0]
    h = model.embed(model.tokens(inputs)) + model.pos
    if block.norm == "post":
        x = block.ln1(h + block.attn(h))[:, -1]
    else:
        x = block.ln2((h + block.attn(block.ln1(h)))[:, -1])
    return block.act(block.fc_in(x))


def neuron_to_logit(model) -> torch.Tensor | None:
    """(units, classes): how the neurons of ``neuron_activations`` write to the logits when that
    is linear: W_out W_U of a one-block transformer without LayerNorm, the readout of a
    one-hidden-layer MLP; else None."""
    if isinstance(model, Transformer):
        if len(model.blocks) != 1 or model.blocks[0].norm != "none":
            return None
        return (model.blocks[0].fc_out.weight.T @ model.unembed.weight.T).detach()
    first_is_hidden = model.embedding != "onehot"
    if len(model.hidden) != int(first_is_hidden):
        return None
    return model.readout.weight.T.detach()
