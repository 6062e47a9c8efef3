"""Speed of the framework against plain hand-written loops, and the cost of the metrics.

    python scripts/bench.py                      # every case on the current device
    python scripts/bench.py --cases quad_mlp --max-steps 3000 --device cuda

Each case trains until validation accuracy reaches 0.99 (or ``--max-steps``) and reports steps per
second (evaluation included, on each case's own schedule: every 10 steps for the MLPs and the
baselines, log-spaced for power2022 as shipped) and the wall time to 99 %. The baselines evaluate
validation only; the framework evaluates train and validation on every example, so
``power2022_eval_every_10`` shows what dense full evaluation costs a minibatch transformer.
``--repeat N`` runs each case N times and reports the median.
``--pack [options]`` compares a grid trained as one pack with the same grid run one process after
another (grokking/pack/bench.py; ``--pack --help`` lists its options).
``baseline_*`` cases are minimal loops written the way a researcher would (full data on the device,
no DataLoader) and set the bar; ``*_nometrics`` cases switch the extra metrics off to show their
overhead. Results go to stdout as a table and, with ``--json``, to a file.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from grokking.config import compose_config
from grokking.pack.bench import main as pack_bench
from grokking.train import train

QUAD_MLP = ["p=97", "frac=0.5"]
POWER = ["experiment=power2022"]  # as shipped: log-spaced evaluation, as openai/grok
POWER_LINEAR = POWER + ["eval_schedule=linear", "eval_every=10"]
NO_METRICS = ["metrics.every=0"]
CASES = {
    "baseline_quad_mlp": "baseline",
    "quad_mlp": QUAD_MLP,
    "quad_mlp_nometrics": QUAD_MLP + NO_METRICS,
    "baseline_transformer": "baseline",
    "power2022": POWER,
    "power2022_nometrics": POWER + NO_METRICS,
    "power2022_eval_every_10": POWER_LINEAR,
}


def framework(overrides: list[str], max_steps: int, device: str) -> dict:
    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose_config(overrides + [f"steps={max_steps}", "early_stop=0.99", "progress=none",
                                    "checkpoint_every=1000000", f"device={device}"])
        summary = train(cfg, Path(run_dir))
    return {"steps": summary["step"], "seconds": summary["wall_time_s"], "grok_step": summary["steps_to_grok"]}


def modular_sum_data(p: int, frac: float, device):
    pairs = torch.cartesian_prod(torch.arange(p), torch.arange(p))
    labels = pairs.sum(dim=1) % p
    order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0))
    cut = int(frac * len(pairs))
    return [t.to(device) for t in (pairs[order[:cut]], labels[order[:cut]], pairs[order[cut:]], labels[order[cut:]])]


class PlainQuadMLP(nn.Module):
    """Linear on concatenated one-hots (as an embedding sum), x^2, linear readout; no biases."""

    def __init__(self, p: int, width: int = 512):
        super().__init__()
        self.first = nn.Linear(2 * p, width, bias=False)
        self.out = nn.Linear(width, p, bias=False)
        self.p = p

    def forward(self, x):
        w = self.first.weight.T
        return self.out((w[x[:, 0]] + w[self.p + x[:, 1]]) ** 2)


class PlainTransformer(nn.Module):
    """danielmamay/grokking's shape: 2 post-LN blocks of nn.MultiheadAttention + GELU MLP on
    "a ∘ b =", logits from the last position."""

    def __init__(self, p: int, width: int = 128, heads: int = 4):
        super().__init__()
        self.p = p
        self.embed, self.pos = nn.Embedding(p + 2, width), nn.Embedding(4, width)
        self.attn = nn.ModuleList(nn.MultiheadAttention(width, heads) for _ in range(2))
        self.mlp = nn.ModuleList(nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)) for _ in range(2))
        self.norms = nn.ModuleList(nn.LayerNorm(width) for _ in range(4))
        self.out = nn.Linear(width, p)

    def forward(self, x):
        seq = torch.stack([x[:, 0], torch.full_like(x[:, 0], self.p), x[:, 1], torch.full_like(x[:, 0], self.p + 1)], 1)
        h = (self.embed(seq) + self.pos.weight).transpose(0, 1)
        mask = torch.triu(torch.full((4, 4), float("-inf"), device=x.device), diagonal=1)
        for i, (attn, mlp) in enumerate(zip(self.attn, self.mlp)):
            h = self.norms[2 * i](h + attn(h, h, h, attn_mask=mask, need_weights=False)[0])
            h = self.norms[2 * i + 1](h + mlp(h))
        return self.out(h[-1])


def baseline(name: str, max_steps: int, device: str) -> dict:
    torch.manual_seed(0)
    xt, yt, xv, yv = modular_sum_data(97, 0.5, device)
    transformer = name == "baseline_transformer"
    model = (PlainTransformer(97) if transformer else PlainQuadMLP(97)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98))
    batch = 512 if transformer else len(xt)
    start, step = time.time(), 0
    while step < max_steps:
        idx = torch.randint(0, len(xt), (batch,), device=device) if transformer else slice(None)
        loss = F.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 10 == 0:
            with torch.no_grad():
                if (model(xv).argmax(-1) == yv).float().mean().item() >= 0.99:
                    return {"steps": step, "seconds": time.time() - start, "grok_step": step}
    return {"steps": step, "seconds": time.time() - start, "grok_step": None}


def main() -> None:
    if sys.argv[1:2] == ["--pack"]:
        return pack_bench(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated from: {', '.join(CASES)}")
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; the median is reported")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    unknown = [name for name in args.cases.split(",") if name not in CASES]
    if unknown:
        parser.error(f"--cases {unknown[0]}: no such case; allowed: {', '.join(CASES)}")
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    print(f"device: {device} ({torch.cuda.get_device_name() if device.startswith('cuda') else 'CPU'}), "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'case':24s} {'steps':>6s} {'steps/s':>8s} {'99% at':>7s} {'seconds to 99%':>15s}")
    framework(QUAD_MLP, 5, device)  # warm-up: the first run in a process pays CUDA and library start-up
    results = {}
    for name in args.cases.split(","):
        spec = CASES[name]
        runs = [baseline(name, args.max_steps, device) if spec == "baseline" else framework(spec, args.max_steps, device)
                for _ in range(args.repeat)]
        r = sorted(runs, key=lambda run: run["steps"] / run["seconds"])[len(runs) // 2]
        r["steps_per_s"] = r["steps"] / r["seconds"]
        results[name] = r
        grok = f"{r['grok_step']:>7d} {r['seconds']:15.1f}" if r["grok_step"] else f"{'-':>7s} {'-':>15s}"
        print(f"{name:24s} {r['steps']:6d} {r['steps_per_s']:8.1f} {grok}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": device, "results": results}, indent=2))


if __name__ == "__main__":
    main()
