"""Metrics computed at evaluation time from the evaluation's own forward pass.

The training loop builds one ``MetricSuite(cfg, model, data)`` and, at each evaluation, merges
``suite(step, logits, features)`` into the metrics record; ``logits`` and ``features`` come from
one no-grad forward pass over every example. What runs when is set by the ``metrics`` config
group (conf/metrics/default.yaml); the definitions are in docs/metrics.md, one module per concern:
norms, fourier, rank, progress_measures (restricted/excluded loss), probe, collapse (softmax
collapse and naïve loss minimisation), lazy_rich (weight change and label alignment).

A metric that makes no sense for the model or data (restricted loss on S5, Fourier metrics on
images) is skipped, and the reason is written once, under ``metrics/skipped``, into the record
of step 0.
"""
from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from grokking.errors import ConfigError
from grokking.metrics.collapse import nlm_cosine, softmax_collapse
from grokking.metrics.fourier import fourier_basis, fourier_power, mean_ipr, top_frequencies
from grokking.metrics.lazy_rich import label_cka, weight_change
from grokking.metrics.norms import weight_norms
from grokking.metrics.probe import probe_accuracies
from grokking.metrics.progress_measures import key_frequencies, restricted_excluded
from grokking.metrics.rank import feature_ranks
from grokking.models import Transformer
from grokking.schedule import eval_steps

SETTINGS_FILE = Path(__file__).resolve().parents[1] / "conf" / "metrics" / "default.yaml"
GROUPS = ("norms", "fourier", "rank", "restricted", "probe", "collapse", "nlm", "weight_change", "cka")
FEATURE_GROUPS = ("rank", "restricted", "probe", "cka")


def load_settings(cfg, **overrides) -> DictConfig:
    """``cfg.metrics`` over the defaults of conf/metrics/default.yaml (so a config without the
    group, e.g. of an older run, gets the defaults), then ``overrides``."""
    defaults = OmegaConf.load(SETTINGS_FILE)
    defaults.pop("defaults")  # the file's schema line, not a setting
    given = OmegaConf.select(cfg, "metrics", default=None) or {}
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ConfigError(f"unknown metrics.{unknown[0]}; allowed: {', '.join(defaults)}")
    return OmegaConf.merge(defaults, given, overrides)


def fourier_problem(model, data) -> str | None:
    """Why the Fourier metrics do not apply, or None."""
    p = data.modulus
    if p is None:
        return "needs token values in Z_p; this data has no modulus"
    if p < 3 or p % 2 == 0:
        return f"needs an odd modulus p >= 3; p={p}"
    if not getattr(model, "token_maps", None) or not model.token_maps():
        return "the model does not read tokens"
    return None


def progress_problem(cfg, model, data) -> str | None:
    """Why restricted/excluded loss do not apply, or None."""
    if not isinstance(model, Transformer) or len(model.blocks) != 1:
        return "needs a one-layer transformer"
    if OmegaConf.select(cfg, "op.name") != "add" or data.modulus is None or data.modulus % 2 == 0:
        return "needs op=add with an odd modulus"
    if model.blocks[0].norm != "none" or model.readout != "last":
        return "needs model.layernorm=none and model.readout=last (neurons reach the logits linearly)"
    return None


class MetricSuite:
    """Called at each evaluation with the logits and intermediate features of all examples;
    returns extra keys for the metrics record.

    ``loss``: the run's per-example loss, ``loss(logits, labels) -> (rows,)`` (the collapse and
    NLM groups); ``initial``: the run's initial parameters by name (θ₀ of the weight_change
    group). The training layer provides both (grokking.training.loss.run_loss,
    engines.build.initial_weights); a group whose input is not given is off."""

    def __init__(self, cfg, model, data, settings: DictConfig | None = None, loss=None,
                 initial: dict[str, torch.Tensor] | None = None):
        self.model, self.data = model, data
        self.settings = settings if settings is not None else load_settings(cfg)
        self.numbers = {step: i for i, step in enumerate(sorted(eval_steps(cfg) | {0}))}
        self.held = data.val_idx if len(data.val_idx) else torch.arange(len(data.labels), device=data.labels.device)
        self.fixed_key_freqs: list[int] | None = None  # set by analysis to use one run-wide set
        self.loss, self.initial = loss, initial
        self.given = {"collapse": loss is not None, "nlm": loss is not None, "weight_change": initial is not None}
        self.batch_size = cfg.batch_size or len(data.train_idx)  # rows a training step takes at once
        trains = None if len(data.train_idx) else "needs training inputs"
        problems = {
            "fourier": fourier_problem(model, data),
            "restricted": progress_problem(cfg, model, data),
            "rank": None if len(self.held) >= 2 else "needs at least 2 held-out inputs",
            "probe": None if len(data.train_idx) and len(data.val_idx) else "needs training and held-out inputs",
            "collapse": trains,
            "nlm": trains,
            "cka": None if len(self.held) >= 2 else "needs at least 2 held-out inputs",
        }
        self.skipped = {g: why for g, why in problems.items() if why and self.period(g)}
        self.basis = fourier_basis(data.modulus, device=data.labels.device) if problems["fourier"] is None else None

    def period(self, group: str) -> int:
        return self.settings.every * self.settings[f"{group}_every"] if self.given.get(group, True) else 0

    def enabled(self, group: str) -> bool:
        return self.period(group) > 0 and group not in self.skipped

    def due(self, group: str, step: int) -> bool:
        """Enabled, and the evaluation's number on the schedule is a multiple of the group's period
        (an evaluation off the schedule, a final step between two scheduled ones, gets all). The
        numbers do not depend on ``steps``, so a run extended later logs what one long run does."""
        number = self.numbers.get(step)
        return self.enabled(group) and (number is None or number % self.period(group) == 0)

    @property
    def wants_features(self) -> bool:
        return any(self.enabled(group) for group in FEATURE_GROUPS)

    def wants_features_at(self, step: int) -> bool:
        """Whether the evaluation at ``step`` needs the features (a group that reads them is due)."""
        return any(self.due(group, step) for group in FEATURE_GROUPS)

    @torch.no_grad()
    def __call__(self, step: int, logits: torch.Tensor, features: dict) -> dict:
        out = {}
        if self.due("norms", step):
            out.update(weight_norms(self.model))
        if self.due("fourier", step):
            powers = self.fourier_powers()
            out.update({"fourier_ipr": mean_ipr(powers),
                        "fourier/top_freqs": top_frequencies(powers, self.settings.top_freqs)})
        if self.due("rank", step):
            out.update(feature_ranks(features, self.held))
        if self.due("restricted", step):
            out.update(self.progress_measures(logits, features))
        if self.due("probe", step):
            d = self.data
            out.update(probe_accuracies(features, d.labels, d.train_idx, d.val_idx, d.n_classes, self.settings.probe_ridge))
        if self.due("collapse", step):
            rows = self.data.train_idx
            out.update(softmax_collapse(self.loss(logits[rows], self.data.labels[rows]), logits[rows]))
        if self.due("nlm", step):
            out["collapse/nlm_cos"] = self.nlm_cosine()
        if self.due("weight_change", step):
            out.update(weight_change(self.model, self.initial))
        if self.due("cka", step):
            held = self.held
            out["label_cka"] = label_cka(self.model.last_hidden(features)[held], self.data.labels[held], self.data.n_classes)
        if step == 0 and self.skipped:
            out["metrics/skipped"] = dict(self.skipped)
        return out

    def nlm_cosine(self) -> float | None:
        """cos(-∇L, θ) of the whole training set's loss at the current weights
        (collapse.nlm_cosine), in passes of the training batch size (what a step holds at once)."""
        d = self.data
        return nlm_cosine(self.model, d.inputs[d.train_idx], d.labels[d.train_idx], self.loss, self.batch_size)

    def fourier_powers(self) -> torch.Tensor:
        """(operands * units, K) Fourier power of the token maps of every operand, side by side."""
        return fourier_power(torch.cat(self.model.token_maps(), dim=1), self.basis)

    @torch.no_grad()
    def checkpoint_extras(self) -> dict:
        """Stored with each checkpoint snapshot: ``fourier_power``, the (operands, K) power per
        frequency k = 1..K of each operand's token map, summed over units (empty when the Fourier
        metrics are off)."""
        if not self.enabled("fourier"):
            return {}
        operands = len(self.model.token_maps())
        return {"fourier_power": self.fourier_powers().reshape(operands, -1, (self.data.modulus - 1) // 2).sum(dim=1).cpu()}

    def neurons(self, features: dict) -> torch.Tensor:
        """MLP activations of the one block at the readout position, (examples, d_mlp)."""
        return self.model.blocks[0].act(features["block0.mlp"])

    def key_freqs(self, features: dict) -> list[int]:
        s = self.settings
        return key_frequencies(self.neurons(features), self.data.inputs, self.data.modulus, s.key_fve, s.key_share)

    def progress_measures(self, logits: torch.Tensor, features: dict) -> dict:
        freqs = self.fixed_key_freqs if self.fixed_key_freqs is not None else self.key_freqs(features)
        block, d = self.model.blocks[0], self.data
        neuron_to_logit = block.fc_out.weight.T @ self.model.unembed.weight.T
        losses = restricted_excluded(self.neurons(features), logits, neuron_to_logit, d.inputs, d.labels,
                                     d.train_idx, self.held, d.modulus, freqs)
        return {**losses, "key_freqs": freqs}
