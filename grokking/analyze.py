"""Post-hoc analysis of a run: ``python -m grokking.analyze <run-folder> [--device cuda] [--every N]``.

Recomputes every metric of ``grokking.metrics`` (all groups on, the probe too) over the run's
checkpoint snapshots, so a run trained with ``metrics.every=0`` can be analysed later, and writes
beside the run record:

    analysis/metrics.jsonl   one object per snapshot: step, train/val loss and accuracy, metrics
    analysis/curves.png      train and validation accuracy and loss over steps (log x)
    analysis/spectrum.png    Fourier power per frequency of the embedding, first and last snapshot
    analysis/progress.png    Fourier IPR, feature rank, weight norm (and restricted/excluded loss)
                             over steps, with the memorisation and grokking steps marked
    analysis/circle.png      the last embedding projected on its strongest frequency's cos and sin
                             directions: a circle once the network uses that frequency

As in Nanda et al. (2023), restricted and excluded loss use one set of key frequencies for the
whole run: those of the last snapshot.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from grokking.data import build_dataset  # noqa: E402
from grokking.errors import ConfigError  # noqa: E402
from grokking.metrics import GROUPS, MetricSuite, load_settings  # noqa: E402
from grokking.metrics.fourier import fourier_basis, fourier_power  # noqa: E402
from grokking.milestones import milestones  # noqa: E402
from grokking.models import build_model, embedding  # noqa: E402
from grokking.plots import mark_milestones, plot_curves, save, series  # noqa: E402
from grokking.record import RunRecord, jsonable  # noqa: E402
from grokking.training.device import pick_device  # noqa: E402
from grokking.training.engines.build import initial_weights  # noqa: E402
from grokking.training.evaluate import evaluate  # noqa: E402
from grokking.training.loss import run_loss  # noqa: E402


@torch.no_grad()
def analyse(run_dir: Path, device: str = "auto", every: int = 1) -> list[dict]:
    """Metrics of every ``every``-th snapshot (the last always), written to analysis/metrics.jsonl;
    then the plots. Returns the records."""
    record = RunRecord(run_dir)
    paths = record.snapshots()
    if not paths:
        raise ConfigError(f"{run_dir}: no checkpoints/step_*.pt to analyse")
    paths = paths[:-1][::every] + paths[-1:]
    snapshots = [torch.load(path, map_location="cpu", weights_only=False) for path in paths]
    cfg = OmegaConf.create(snapshots[-1]["config"])
    data = build_dataset(cfg).to(pick_device(device))
    model = build_model(cfg, data).to(data.labels.device)
    settings = load_settings(cfg, every=1, **{f"{group}_every": 1 for group in GROUPS})
    suite = MetricSuite(cfg, model, data, settings, loss=run_loss(cfg), initial=initial_weights(cfg, data))
    if suite.enabled("restricted"):
        model.load_state_dict(snapshots[-1]["model"])
        suite.fixed_key_freqs = suite.key_freqs(evaluate(model, data, cfg, features=True)[2])
    records, embeddings = [], []
    for snapshot in snapshots:
        model.load_state_dict(snapshot["model"])
        values, logits, feats = evaluate(model, data, cfg, features=True)
        records.append({"step": snapshot["step"], **values, **suite(snapshot["step"], logits, feats)})
        embeddings.append(embedding(model).cpu() if suite.enabled("fourier") else None)
    if suite.skipped:
        records[0]["metrics/skipped"] = dict(suite.skipped)
    out = run_dir / "analysis"
    out.mkdir(exist_ok=True)
    (out / "metrics.jsonl").write_text("".join(json.dumps(jsonable(r)) + "\n" for r in records))
    plot_all(out, cfg, record.read_metrics() or records, records, embeddings, data.modulus)
    return records


def plot_all(out: Path, cfg, history: list[dict], records: list[dict], embeddings: list, p: int | None) -> None:
    marks = milestones(history, cfg.memorize_at, cfg.grok_at)
    save(plot_curves(history, marks), out / "curves.png")
    save(plot_progress(records, marks), out / "progress.png")
    if embeddings[-1] is not None:
        save(plot_spectrum(embeddings[0], embeddings[-1], records[0]["step"], records[-1]["step"], p), out / "spectrum.png")
        save(plot_circle(embeddings[-1], p), out / "circle.png")


def plot_progress(records: list[dict], marks: dict):
    panels = [("Fourier IPR", ["fourier_ipr"]),
              ("feature rank", sorted(k for k in records[-1] if k.startswith("feature_rank/"))),
              ("weight norm", ["weight_norm"]),
              ("restricted / excluded loss", ["restricted_loss", "excluded_loss"])]
    panels = [(title, keys) for title, keys in panels if any(series(records, k)[0] for k in keys)]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False, layout="constrained")
    for ax, (title, keys) in zip(axes[0], panels):
        for key in keys:
            ax.plot(*series(records, key), marker=".", label=key)
        mark_milestones(ax, marks)
        ax.set(title=title, xlabel="step")
        ax.legend(fontsize="small")
    return figure


def plot_spectrum(first: torch.Tensor, last: torch.Tensor, first_step: int, last_step: int, p: int):
    basis = fourier_basis(p)
    figure, ax = plt.subplots(figsize=(9, 4), layout="constrained")
    freqs = range(1, (p - 1) // 2 + 1)
    for emb, step, kind in ((first, first_step, "line"), (last, last_step, "bar")):
        power = fourier_power(emb, basis).sum(dim=0)
        share = (power / power.sum()).tolist()
        if kind == "bar":
            ax.bar(freqs, share, label=f"step {step}")
        else:
            ax.plot(freqs, share, color="black", marker=".", label=f"step {step}")
    ax.set(xlabel="frequency k", ylabel="share of the embedding's power", title="Fourier power spectrum of the embedding")
    ax.legend()
    return figure


def plot_circle(emb: torch.Tensor, p: int):
    """Each token's embedding on the unit directions of its strongest frequency's cos and sin
    components (rows 2k-1 and 2k of basis @ embedding)."""
    basis = fourier_basis(p)
    coeffs = basis @ emb.double()
    k = int(fourier_power(emb, basis).sum(dim=0).argmax()) + 1
    directions = coeffs[2 * k - 1 : 2 * k + 1]
    xy = emb.double() @ (directions / directions.norm(dim=1, keepdim=True)).T
    figure, ax = plt.subplots(figsize=(5, 5), layout="constrained")
    ax.scatter(xy[:, 0], xy[:, 1], c=range(p), cmap="hsv")
    for a in range(p):
        ax.annotate(str(a), xy[a].tolist(), fontsize=7)
    ax.set(title=f"embedding on frequency {k}", xlabel=f"cos {k} direction", ylabel=f"sin {k} direction", aspect="equal")
    return figure


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, ...")
    parser.add_argument("--every", type=int, default=1, help="analyse every N-th snapshot (the last always)")
    args = parser.parse_args(argv)
    try:
        if args.every < 1:
            raise ConfigError(f"--every={args.every} is invalid; it must be >= 1")
        records = analyse(args.run_dir, args.device, args.every)
    except ConfigError as e:
        print(f"grokking.analyze: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(f"analysed {len(records)} snapshots; wrote {args.run_dir / 'analysis'}")


if __name__ == "__main__":
    main()
