"""The two model families: an MLP and a small transformer.

Both return logits from ``forward(x)`` and, from ``forward(x, features=True)``, also a dict of the
intermediate activations that the metrics read (pre-activations of every hidden linear layer; for
the transformer, the residual stream after each block and the MLP hidden layer, at the readout
position). ``token_maps()`` gives, per operand, the (n_values, units) matrix of how each token value
drives the first layer of neurons that reads tokens; the Fourier metrics work on it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from grokking.errors import ConfigError


class Square(torch.autograd.Function):
    """x * x with a backward of one product and one in-place doubling: ``torch.square``'s
    backward (grad * (2 * x)) makes two full-size temporaries, and on a CPU the quadratic MLP's
    step is bound by such passes over memory. The values are the same bit for bit (doubling is
    exact)."""

    generate_vmap_rule = True  # the packed engine runs models under vmap

    @staticmethod
    def forward(x):
        return x * x

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return torch.mul(grad, x).mul_(2.0)


ACTIVATIONS = {
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
    "quad": Square.apply,
    "identity": lambda x: x,
}


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` units, reading tokens or feature vectors.

    Token inputs (n_operands ids per example) enter through a per-operand embedding: ``onehot``
    makes the first hidden layer read one-hot tokens directly (a bias-free linear layer on the
    concatenated one-hots, computed as a gather), ``learned`` looks up ``embed_dim`` vectors that
    are summed or concatenated (``combine``) before the first hidden layer.
    """

    def __init__(self, cfg, n_classes: int, n_values: int | None = None, n_operands: int = 2,
                 in_features: int | None = None):
        super().__init__()
        depth, width = cfg.depth, cfg.width
        self.act = ACTIVATIONS[cfg.activation]
        self.n_values, self.n_operands = n_values, n_operands
        self.embedding = str(cfg.embedding) if n_values else None
        self.combine = str(cfg.combine)
        if self.embedding == "onehot":
            fan_in = n_operands * n_values
            bound = 1 / math.sqrt(fan_in)  # nn.Linear's default init for that fan-in
            self.token_weight = nn.Parameter(torch.empty(n_operands * n_values, width).uniform_(-bound, bound))
            self.token_bias = nn.Parameter(torch.zeros(width)) if cfg.bias else None
            sizes = [width] * depth
        else:
            if self.embedding == "learned":
                self.embed = nn.Embedding(n_operands * n_values, cfg.embed_dim)
                in_features = cfg.embed_dim * (n_operands if self.combine == "concat" else 1)
            sizes = [in_features] + [width] * depth
        self.hidden = nn.ModuleList(nn.Linear(i, o, bias=cfg.bias) for i, o in zip(sizes[:-1], sizes[1:]))
        self.readout = nn.Linear(width, n_classes, bias=cfg.bias)
        if cfg.get("init") == "single_freq":
            self.single_frequency_init()
        scale_weights(self, cfg.init_scale)

    def forward(self, x: torch.Tensor, features: bool = False):
        feats = {}
        h = self.first_layer(x)
        if h is not None:
            feats["layer1"] = h
            h = self.act(h)
        else:
            h = self.inputs(x)
        for i, layer in enumerate(self.hidden, start=len(feats) + 1):
            h = layer(h)
            feats[f"layer{i}"] = h
            h = self.act(h)
        logits = self.readout(h)
        return (logits, feats) if features else logits

    def last_hidden(self, features: dict) -> torch.Tensor:
        """What the readout reads: the activation of the last hidden layer, from ``features``."""
        return self.act(features[f"layer{len(features)}"])

    def offsets(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids shifted into each operand's block of the stacked per-operand tables."""
        return x + self.n_values * torch.arange(self.n_operands, device=x.device)

    def first_layer(self, x):
        """Pre-activation of the first hidden layer for one-hot tokens (a gather), else None."""
        if self.embedding != "onehot":
            return None
        h = F.embedding(x[:, 0], self.token_weight)  # one gather per operand: no (N, 2, width) copy
        for i in range(1, self.n_operands):
            h = h + F.embedding(x[:, i] + i * self.n_values, self.token_weight)
        return h if self.token_bias is None else h + self.token_bias

    def inputs(self, x):
        if self.embedding != "learned":
            return x
        e = self.embed(self.offsets(x))
        return e.sum(dim=1) if self.combine == "sum" else e.flatten(1)

    def token_maps(self) -> list[torch.Tensor]:
        """Per operand: how each token value moves the first hidden layer's pre-activations."""
        if self.embedding == "onehot":
            return list(self.token_weight.split(self.n_values))
        if self.embedding != "learned":
            return []
        tables = self.embed.weight.split(self.n_values)
        w = self.hidden[0].weight  # (width, in_features)
        if self.combine == "sum":
            return [t @ w.T for t in tables]
        return [t @ w_i.T for t, w_i in zip(tables, w.split(self.embed.embedding_dim, dim=1))]

    @torch.no_grad()
    def single_frequency_init(self):
        """He et al. (2025): each neuron reads every operand through one cosine of one frequency.

        Neuron j gets a random frequency k_j in [1, (p-1)/2] and, per operand, a random phase; the
        amplitude keeps the default init's root-mean-square, so ``init_scale`` means the same.
        """
        if self.embedding != "onehot":
            raise ConfigError("model.init=single_freq needs model.embedding=onehot")
        p, width = self.n_values, self.token_weight.shape[1]
        freqs = torch.randint(1, max(2, (p + 1) // 2), (width,))
        rms = self.token_weight.pow(2).mean().sqrt()
        values = torch.arange(p, dtype=torch.float32)[:, None]
        for block in self.token_weight.data.split(p):
            phase = torch.rand(width) * 2 * math.pi
            block.copy_(rms * math.sqrt(2) * torch.cos(2 * math.pi * freqs * values / p + phase))


class Attention(nn.Module):
    def __init__(self, width: int, heads: int, bias: bool, causal: bool):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.q, self.k, self.v, self.o = (nn.Linear(width, width, bias=bias) for _ in range(4))

    def forward(self, x):
        n, t, d = x.shape
        split = lambda y: y.view(n, t, self.heads, d // self.heads).transpose(1, 2)  # noqa: E731
        z = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)), split(self.v(x)), is_causal=self.causal)
        return self.o(z.transpose(1, 2).reshape(n, t, d))


class Block(nn.Module):
    """Attention then MLP, each with a residual connection; LayerNorm none, pre or post."""

    def __init__(self, cfg, width: int):
        super().__init__()
        self.norm = cfg.layernorm
        self.attn = Attention(width, cfg.heads, cfg.bias, cfg.causal)
        self.fc_in = nn.Linear(width, cfg.d_mlp, bias=cfg.bias)
        self.fc_out = nn.Linear(cfg.d_mlp, width, bias=cfg.bias)
        self.act = ACTIVATIONS[cfg.activation]
        make_norm = (lambda: nn.LayerNorm(width, bias=cfg.bias)) if self.norm != "none" else nn.Identity
        self.ln1, self.ln2 = make_norm(), make_norm()

    def forward(self, x):
        if self.norm == "post":
            x = self.ln1(x + self.attn(x))
            pre = self.fc_in(x)
            return self.ln2(x + self.fc_out(self.act(pre))), pre
        x = x + self.attn(self.ln1(x))
        pre = self.fc_in(self.ln2(x))
        return x + self.fc_out(self.act(pre)), pre


SEQUENCES = {"a b =": ("a", "b", "="), "a ∘ b =": ("a", "∘", "b", "="), "a op b =": ("a", "∘", "b", "="),
             "a b c =": ("a", "b", "c", "="), "a ∘ b ∘ c =": ("a", "∘", "b", "∘", "c", "=")}
OPERANDS = ("a", "b", "c")


class Transformer(nn.Module):
    """A decoder-style transformer reading the sequence ``a b =`` or ``a ∘ b =`` (``a b c =`` or
    ``a ∘ b ∘ c =`` for three operands).

    The vocabulary is the token values followed by ``∘`` and ``=``; positions are learned; the
    logits come from the last position or the mean over positions (``readout``).
    """

    def __init__(self, cfg, n_classes: int, n_values: int, n_operands: int = 2):
        super().__init__()
        width, heads = cfg.width, cfg.heads
        if width % heads:
            raise ConfigError(f"model.heads={heads} does not divide model.width={width}")
        self.readout = str(cfg.readout)
        self.sequence = SEQUENCES[cfg.sequence]
        reads = sum(symbol in OPERANDS for symbol in self.sequence)
        if reads != n_operands:
            fits = [name for name, symbols in SEQUENCES.items() if sum(s in OPERANDS for s in symbols) == n_operands]
            raise ConfigError(f"model.sequence='{cfg.sequence}' reads {reads} operands and this op has {n_operands}; "
                              f"allowed: {', '.join(repr(f) for f in fits)}")
        # runs recorded before model.init existed resume with their weights, whatever the init
        init = cfg.get("init", "torch")
        self.n_values = n_values
        self.embed = nn.Embedding(n_values + 2, width)  # values, then "∘", then "="
        self.pos = nn.Parameter(torch.randn(len(self.sequence), width))  # N(0, 1) as nn.Embedding
        self.blocks = nn.ModuleList(Block(cfg, width) for _ in range(cfg.depth))
        self.ln_final = nn.LayerNorm(width, bias=cfg.bias) if cfg.layernorm == "pre" else nn.Identity()
        self.unembed = nn.Linear(width, n_classes, bias=cfg.bias)
        if init == "nanda":
            self.nanda_init()
        scale_weights(self, cfg.init_scale)

    @torch.no_grad()
    def nanda_init(self):
        """Nanda et al. (2023)'s initialisation: every weight matrix, the embeddings and the
        positions N(0, 1/width), the unembedding N(0, 1/classes), biases zero. (``init=torch``
        keeps PyTorch's defaults, as danielmamay/grokking: embeddings and positions N(0, 1),
        linear layers uniform within ±1/sqrt(fan_in).) The scale matters: power2022 with its
        positions at N(0, 1/width) grokked at step 2113 for seeds 0 and 1, against 1334 and 1059."""
        width = self.pos.shape[1]
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                fan = self.unembed.out_features if module is self.unembed else width
                module.weight.normal_(0, fan ** -0.5)
                if getattr(module, "bias", None) is not None:
                    module.bias.zero_()
        self.pos.normal_(0, width ** -0.5)

    def tokens(self, x):
        """Lay the operand ids out as the configured sequence, adding the ∘ and = tokens."""
        special = {"∘": self.n_values, "=": self.n_values + 1}
        columns, operand = [], iter(range(x.shape[1]))
        for symbol in self.sequence:
            columns.append(x[:, next(operand)] if symbol in OPERANDS else torch.full_like(x[:, 0], special[symbol]))
        return torch.stack(columns, dim=1)

    def pool(self, h):
        return h[:, -1] if self.readout == "last" else h.mean(dim=1)

    def forward(self, x: torch.Tensor, features: bool = False):
        h = self.embed(self.tokens(x)) + self.pos
        feats = {}
        for i, block in enumerate(self.blocks):
            h, pre = block(h)
            if features:
                feats[f"block{i}.mlp"] = self.pool(pre)
                feats[f"block{i}.resid"] = self.pool(h)
        logits = self.unembed(self.ln_final(self.pool(h)))
        return (logits, feats) if features else logits

    def last_hidden(self, features: dict) -> torch.Tensor:
        """What the unembedding reads: the last block's residual stream at the readout, after the
        final LayerNorm (pre-LN only), from ``features``."""
        return self.ln_final(features[f"block{len(self.blocks) - 1}.resid"])

    def token_maps(self) -> list[torch.Tensor]:
        """Nanda et al.'s W_neur: token embedding through the first block's OV circuit into its MLP.

        Summed over heads, W_E W_V^h W_O^h W_in equals W_E W_V W_O W_in with the heads' blocks
        concatenated, which is what the fused linear layers hold.
        """
        block = self.blocks[0]
        w_e = self.embed.weight[: self.n_values]
        return [w_e @ block.attn.v.weight.T @ block.attn.o.weight.T @ block.fc_in.weight.T]


@torch.no_grad()
def scale_weights(model: nn.Module, scale: float) -> None:
    """Omnigrok's α: multiply every initial parameter by ``scale``."""
    if scale != 1:
        for param in model.parameters():
            param.mul_(scale)


def embedding(model) -> torch.Tensor:
    """(p, dims) token embedding: W_E's value rows for a transformer; for an MLP, its first layer's
    per-token weights (every operand's token map side by side)."""
    if isinstance(model, Transformer):
        return model.embed.weight[: model.n_values]
    return torch.cat(model.token_maps(), dim=1)


def build_model(cfg, data) -> nn.Module:
    """The model named by ``cfg.model.name`` for this data set (before moving it to a device)."""
    name = cfg.model.name
    if name == "mlp":
        in_features = None if data.n_values else data.inputs.shape[1]
        return MLP(cfg.model, data.n_classes, data.n_values, data.inputs.shape[1], in_features)
    if name == "transformer":
        if not data.n_values:
            raise ConfigError("model=transformer reads tokens; use model=mlp for vector inputs")
        return Transformer(cfg.model, data.n_classes, data.n_values, data.inputs.shape[1])
    raise ConfigError(f"unknown model '{name}'; allowed: mlp, transformer")
