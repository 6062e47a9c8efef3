"""Deep grokking (Fan, Pascanu & Jaggi 2024) end to end: train, then plot accuracy, weight norm,
loss and the per-layer feature rank, effective rank and linear-probe accuracy.

    python scripts/deep_grokking.py              # offline 8x8 digits: experiment=deep_digits with
                                                 # alpha=8, and alpha=1 as control (minutes on a CPU)
    python scripts/deep_grokking.py --mnist      # also experiment=fan2024 on MNIST (a GPU is advised;
                                                 # the files are fetched into data.dir when online)
    python scripts/deep_grokking.py steps=5000   # Hydra overrides, applied to every run

Runs live in --out/<data>/<label> and continue where they stopped when re-run; figures go to
--figures/deep_grokking_<data>.png. See docs/deep_grokking.md.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from grokking.config import compose_config
from grokking.training.loop import train  # noqa: E402

RUNS = {
    "digits": {"alpha=8": ["experiment=deep_digits"], "alpha=1": ["experiment=deep_digits", "model.init_scale=1"]},
    "mnist": {"alpha=8": ["experiment=fan2024"]},
}
# (panel title, metric key or per-layer prefix ending in "/", log-scaled y)
PANELS = [("accuracy", "acc", False), ("loss (MSE)", "loss", True), ("weight norm", "weight_norm", False),
          ("feature rank (Fan et al.)", "feature_rank/", False), ("effective rank", "effective_rank/", False),
          ("linear probe accuracy", "probe_acc/", False)]


def run_all(data: str, out: Path, overrides: list[str]) -> dict[str, list[dict]]:
    """Train (or continue) each run of ``data``; its metrics history by label."""
    if data == "digits":
        torch.set_num_threads(1)  # small matrices: one thread is fastest, several contend on a busy CPU
    histories = {}
    for label, preset in RUNS[data].items():
        run_dir = out / data / label
        cfg = compose_config([*preset, *overrides])
        summary = train(cfg, run_dir)
        print(f"{data} {label}: memorised at step {summary['steps_to_memorize']}, val/acc >= {cfg.grok_at} "
              f"at {summary['steps_to_grok']}, final val/acc {summary['val/acc']:.3f}")
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        histories[label] = [json.loads(line) for line in lines]
    return histories


def curve(history: list[dict], key: str) -> tuple[list[int], list[float]]:
    rows = [r for r in history if r.get(key) is not None and r["step"] > 0]  # step 0 is off a log axis
    return [r["step"] for r in rows], [r[key] for r in rows]


def layer_names(history: list[dict], prefix: str) -> list[str]:
    names = {k[len(prefix):] for r in history for k in r if k.startswith(prefix)}
    return sorted(names, key=lambda n: (len(n), n))  # layer2 before layer10


def plot(data: str, histories: dict[str, list[dict]], path: Path) -> None:
    """Accuracy and loss of every run (train dashed, validation solid); weight norm of every run;
    the per-layer metrics of the first run (the alpha=8 one), one colour per layer."""
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    main_label, main = next(iter(histories.items()))
    for ax, (title, key, log_y) in zip(axes.flat, PANELS):
        if key in ("acc", "loss"):
            for i, (label, history) in enumerate(histories.items()):
                for split, style in (("train", "--"), ("val", "-")):
                    ax.plot(*curve(history, f"{split}/{key}"), style, color=f"C{i}", label=f"{label} {split}")
        elif key.endswith("/"):
            layers = layer_names(main, key)
            for j, layer in enumerate(layers):
                ax.plot(*curve(main, key + layer), color=plt.cm.viridis(j / max(1, len(layers) - 1)), label=layer)
            title += f" ({main_label})"
        else:
            for i, (label, history) in enumerate(histories.items()):
                ax.plot(*curve(history, key), color=f"C{i}", label=label)
        ax.set(title=title, xscale="log", xlabel="step", yscale="log" if log_y else "linear")
        ax.legend(fontsize=7)
    fig.suptitle(f"Deep grokking on {data}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train the deep-grokking runs and plot them (docs/deep_grokking.md).")
    parser.add_argument("--mnist", action="store_true", help="also run experiment=fan2024 on MNIST")
    parser.add_argument("--out", type=Path, default=Path("runs/deep_grokking"), help="run folders")
    parser.add_argument("--figures", type=Path, default=Path("docs/figures"), help="figure folder")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every run, e.g. steps=5000")
    args = parser.parse_args(argv)
    for data in ["digits", "mnist"] if args.mnist else ["digits"]:
        histories = run_all(data, args.out, args.overrides)
        path = args.figures / f"deep_grokking_{data}.png"
        plot(data, histories, path)
        print(f"figure: {path}")


if __name__ == "__main__":
    main()
