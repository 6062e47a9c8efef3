"""A run's transformer as a TransformerLens ``HookedTransformer`` (the optional extra ``interp``).

``hooked_transformer(source)`` copies the weights of ``grokking.models.Transformer`` into a
HookedTransformer of the 3.x line (4.x replaced it by a bridge over Hugging Face models) whose
logits at the last position equal the project's, so that the analyses of Nanda et al. (2023) run
unchanged: ``run_with_cache``, ``cache["pattern", 0]``, ``cache["post", 0, "mlp"]``, W_E, W_U, ...
It reads the run's own token ids (``table_tokens``): values 0..p-1, then ``∘`` = p and ``=`` = p+1.

Options TransformerLens cannot express raise a one-line ConfigError naming the option: post-LN
(TransformerLens normalises before each sublayer), a mean readout (its unembedding reads every
position on its own), and activations it does not have (tanh, quad, identity).
"""
from __future__ import annotations

import warnings

import torch

from grokking.errors import ConfigError
from grokking.inspect.load import load_checkpoint
from grokking.models import ACTIVATIONS, Transformer

EXPRESSIBLE = ("relu", "gelu", "silu")  # ours and TransformerLens' agree on these (exact-erf gelu)


def inexpressible(model) -> str | None:
    """Why TransformerLens cannot express this model, or None."""
    if not isinstance(model, Transformer):
        return f"model={type(model).__name__.lower()} is not a transformer; TransformerLens holds transformers only"
    block = model.blocks[0]
    if block.norm == "post":
        return "model.layernorm=post: TransformerLens has pre-LN blocks only (allowed: none, pre)"
    if model.readout != "last":
        return f"model.readout={model.readout}: TransformerLens reads logits per position (allowed: last)"
    if activation_name(block) not in EXPRESSIBLE:
        return (f"model.activation={activation_name(block)}: TransformerLens has no such activation "
                f"(allowed: {', '.join(EXPRESSIBLE)})")
    return None


def activation_name(block) -> str:
    return next(name for name, function in ACTIVATIONS.items() if function is block.act)


def hooked_config(model: Transformer):
    from transformer_lens import HookedTransformerConfig

    block, width = model.blocks[0], model.pos.shape[1]
    heads = block.attn.heads
    return HookedTransformerConfig(
        n_layers=len(model.blocks), d_model=width, n_heads=heads, d_head=width // heads,
        d_mlp=block.fc_in.out_features, n_ctx=len(model.sequence),
        d_vocab=model.embed.num_embeddings, d_vocab_out=model.unembed.out_features,
        act_fn=activation_name(block),
        normalization_type="LN" if block.norm == "pre" else None,
        attention_dir="causal" if block.attn.causal else "bidirectional",
        eps=block.ln1.eps if block.norm == "pre" else 1e-5,
        init_weights=False, device="cpu", dtype=model.pos.dtype,
    )


def head_split(linear, heads: int, bias_shape) -> tuple[torch.Tensor, torch.Tensor | None]:
    """A fused (width -> width) projection as TransformerLens' per-head (heads, d_model, d_head)."""
    width = linear.in_features
    weight = linear.weight.T.reshape(width, heads, width // heads).permute(1, 0, 2)
    return weight, None if linear.bias is None else linear.bias.reshape(bias_shape)


def converted_weights(model: Transformer) -> dict[str, torch.Tensor]:
    """The model's parameters under TransformerLens' names and layouts (missing biases stay zero)."""
    width = model.pos.shape[1]
    out = {"embed.W_E": model.embed.weight, "pos_embed.W_pos": model.pos, "unembed.W_U": model.unembed.weight.T,
           "unembed.b_U": model.unembed.bias}
    for i, block in enumerate(model.blocks):
        attn, heads, prefix = block.attn, block.attn.heads, f"blocks.{i}"
        for name in ("q", "k", "v"):
            weight, bias = head_split(getattr(attn, name), heads, (heads, width // heads))
            out[f"{prefix}.attn.W_{name.upper()}"], out[f"{prefix}.attn.b_{name.upper()}"] = weight, bias
        out[f"{prefix}.attn.W_O"] = attn.o.weight.T.reshape(heads, width // heads, width)
        out[f"{prefix}.attn.b_O"] = attn.o.bias
        out[f"{prefix}.mlp.W_in"], out[f"{prefix}.mlp.b_in"] = block.fc_in.weight.T, block.fc_in.bias
        out[f"{prefix}.mlp.W_out"], out[f"{prefix}.mlp.b_out"] = block.fc_out.weight.T, block.fc_out.bias
        if block.norm == "pre":
            for ln in ("ln1", "ln2"):
                out[f"{prefix}.{ln}.w"], out[f"{prefix}.{ln}.b"] = getattr(block, ln).weight, getattr(block, ln).bias
    if model.blocks[0].norm == "pre":
        out["ln_final.w"], out["ln_final.b"] = model.ln_final.weight, model.ln_final.bias
    return {name: value for name, value in out.items() if value is not None}


@torch.no_grad()
def hooked_transformer(source):
    """A HookedTransformer equal to a run's transformer (a run folder, a checkpoint file, or a
    ``grokking.models.Transformer``), on the CPU in eval mode. Its logits at the last position
    of ``table_tokens(source)`` are the run's logits."""
    model = source if isinstance(source, torch.nn.Module) else load_checkpoint(source).model
    problem = inexpressible(model)
    if problem:
        raise ConfigError(f"cannot express as a HookedTransformer: {problem}")
    try:
        from transformer_lens import HookedTransformer
    except ImportError:
        raise ConfigError("transformer_lens is not installed; pip install -e '.[interp]'") from None
    with warnings.catch_warnings():  # 3.x's notice that 4.0 replaces HookedTransformer: hence the pin
        warnings.simplefilter("ignore", DeprecationWarning)
        hooked = HookedTransformer(hooked_config(model), move_to_device=False)
    state = hooked.state_dict()
    for name, param in hooked.named_parameters():
        state[name] = torch.zeros_like(param)
    for name, value in converted_weights(model).items():
        if name not in state or state[name].shape != value.shape:
            raise RuntimeError(f"TransformerLens layout changed: {name} {tuple(value.shape)}")
        state[name] = value.detach().cpu().clone()
    hooked.load_state_dict(state)
    return hooked.eval()


def table_tokens(source) -> torch.Tensor:
    """(N, positions) token ids of the run's whole table, in the run's data order, as its
    transformer reads them (``a b =`` or ``a ∘ b =``)."""
    if isinstance(source, torch.nn.Module):
        raise ConfigError("table_tokens needs a run folder or checkpoint (the model does not hold its table)")
    loaded = load_checkpoint(source)
    if not isinstance(loaded.model, Transformer):
        raise ConfigError(f"{source}: model={loaded.cfg.model.name} does not read token sequences")
    return loaded.model.tokens(loaded.data.inputs)
