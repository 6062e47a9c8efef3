"""Speed of the framework against plain hand-written loops, and the cost of the metrics.

    python scripts/bench.py                                  # every case, once, on the current device
    python scripts/bench.py --cases baseline_transformer_eval100,power2022 --repeat 3 --threads 1

Each case trains, in a process of its own, until validation accuracy reaches 0.99 (or
``--max-steps``) and stops there. What is timed is the whole process (start-up, set-up, training
and every evaluation on the case's own schedule), as a user waits for it: its wall time to 99 %,
that time per step (ms/step), and the same from the CPU time the process used (steadier than wall
time on a shared machine). Cases run interleaved (round 1 of every case, then round 2, ...), and
the table gives medians over the ``--repeat`` rounds and each case's ratio to ``--reference``.

Every timing records the load around it (scripts/timing.py): a loaded round is left out of the
medians and a case with no quiet round has no figure.

``--pack [options]`` compares a grid trained as one pack with the same grid run one process after
another (scripts/bench_pack.py; ``--pack --help`` lists its options).
``baseline_*`` cases are minimal loops written the way a researcher would (full data on the device,
no DataLoader) and set the bar: ``baseline_transformer_eval100`` evaluates as danielmamay/grokking
does (train and validation loss and accuracy every 100 steps), ``baseline_transformer`` and
``baseline_quad_mlp`` validation accuracy only, every 10 steps. ``*_nometrics`` cases switch the
extra metrics off to show their overhead; ``power2022_log40`` is power2022's earlier schedule
(log-spaced, 40 per decade), ``power2022_eval_every_10`` a dense one. Add a case by a row in
``CASES``: its kind names the runner in ``RUNNERS``, its argument goes to that runner.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench_pack import main as pack_bench
from timing import OTHERS_LIMIT, describe, loaded_note, machine, timed

QUAD_MLP = ["p=97", "frac=0.5"]
POWER = ["experiment=power2022"]  # as shipped
NO_METRICS = ["metrics.every=0"]
CASES = {  # name: (runner kind, its argument)
    "baseline_quad_mlp": ("baseline_quad_mlp", None),
    "quad_mlp": ("framework", QUAD_MLP),
    "quad_mlp_nometrics": ("framework", QUAD_MLP + NO_METRICS),
    "baseline_transformer": ("baseline_transformer", (10, False)),
    "baseline_transformer_eval100": ("baseline_transformer", (100, True)),
    "power2022": ("framework", POWER),
    "power2022_nometrics": ("framework", POWER + NO_METRICS),
    "power2022_log40": ("framework", POWER + ["eval_schedule=log", "eval_per_decade=40"]),
    "power2022_eval_every_10": ("framework", POWER + ["eval_schedule=linear", "eval_every=10"]),
}


def framework(overrides: list[str], max_steps: int, device: str) -> dict:
    from grokking.config import compose_config
    from grokking.training.loop import train

    with tempfile.TemporaryDirectory() as run_dir:
        cfg = compose_config(overrides + [f"steps={max_steps}", "early_stop=0.99", "progress=none",
                                          "checkpoint_every=1000000", f"device={device}"])
        summary = train(cfg, Path(run_dir))
    return {"steps": summary["step"], "grok_step": summary["steps_to_grok"]}


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


def baseline_quad_mlp(_, max_steps: int, device: str) -> dict:
    """Full batch, validation accuracy every 10 steps."""
    torch.manual_seed(0)
    xt, yt, xv, yv = modular_sum_data(97, 0.5, device)
    model = PlainQuadMLP(97).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98))
    for step in range(1, max_steps + 1):
        loss = F.cross_entropy(model(xt), yt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 10 == 0:
            with torch.no_grad():
                if (model(xv).argmax(-1) == yv).float().mean().item() >= 0.99:
                    return {"steps": step, "grok_step": step}
    return {"steps": max_steps, "grok_step": None}


def baseline_transformer(evaluation: tuple[int, bool], max_steps: int, device: str) -> dict:
    """Batches of 512 from a fresh shuffle each epoch, AdamW with 10 warm-up steps. Every
    ``eval_every`` steps: validation accuracy, or with ``full`` train and validation loss and
    accuracy, one number at a time, kept in a log as danielmamay/grokking logs them."""
    eval_every, full = evaluation
    torch.manual_seed(0)
    xt, yt, xv, yv = modular_sum_data(97, 0.5, device)
    model = PlainTransformer(97).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1.0, betas=(0.9, 0.98))
    order, pos, log = torch.randperm(len(xt), device=device), 0, []
    for step in range(1, max_steps + 1):
        if pos >= len(xt):
            order, pos = torch.randperm(len(xt), device=device), 0
        idx, pos = order[pos : pos + 512], pos + 512
        for group in opt.param_groups:
            group["lr"] = 1e-3 * min(step / 10, 1)
        loss = F.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % eval_every:
            continue
        with torch.no_grad():
            splits = ((xt, yt), (xv, yv)) if full else ((xv, yv),)
            logits = [model(x) for x, _ in splits]
            record = {"step": step, "val_acc": (logits[-1].argmax(-1) == yv).float().mean().item()}
            if full:
                record.update(train_acc=(logits[0].argmax(-1) == yt).float().mean().item(),
                              train_loss=F.cross_entropy(logits[0], yt).item(), val_loss=F.cross_entropy(logits[1], yv).item())
        log.append(record)
        if record["val_acc"] >= 0.99:
            return {"steps": step, "grok_step": step}
    return {"steps": max_steps, "grok_step": None}


RUNNERS = {"framework": framework, "baseline_quad_mlp": baseline_quad_mlp, "baseline_transformer": baseline_transformer}


def run_case(name: str, max_steps: int, device: str, threads: int | None) -> None:
    """Inside the case's own process: train, then print the result as one JSON line."""
    if threads:
        torch.set_num_threads(threads)
    kind, argument = CASES[name]
    print(json.dumps(RUNNERS[kind](argument, max_steps, device)))


def time_case(name: str, args) -> dict:
    """Run one case in a fresh process; its wall and CPU seconds, from start to exit, and the load."""
    command = [sys.executable, __file__, "--run-case", name, "--max-steps", str(args.max_steps), "--device", args.device]
    command += ["--threads", str(args.threads)] if args.threads else []
    timing, stdout = timed(command, f"case {name}")
    result = json.loads(stdout.strip().splitlines()[-1])
    return {**result, **timing, "seconds": round(timing["wall_s"], 2), "cpu_seconds": round(timing["cpu_s"], 2)}


def summarise(runs: list[dict]) -> dict | None:
    """Medians over the quiet rounds (the step counts are the same in every round); None if none."""
    quiet = [run for run in runs if not run["loaded"]]
    if not quiet:
        return None
    median = {key: statistics.median(run[key] for run in quiet) for key in ("seconds", "cpu_seconds")}
    steps = quiet[0]["steps"]
    return {"steps": steps, "grok_step": quiet[0]["grok_step"], **median, "runs": len(quiet), "loaded_runs": len(runs) - len(quiet),
            "ms_per_step": 1000 * median["seconds"] / steps, "cpu_ms_per_step": 1000 * median["cpu_seconds"] / steps}


def print_table(results: dict, reference: str | None) -> None:
    ref = results.get(reference) or None
    print(f"\n{'case':30s} {'99% at':>7s} {'ms/step':>8s} {'s to 99%':>9s} {'cpu ms/step':>12s} {'cpu s':>7s}"
          + (f" {'ms/step ratio':>14s} {'s ratio':>8s} {'cpu ratio':>10s}" if ref else ""))
    for name, r in results.items():
        if r is None:
            print(f"{name:30s} every round was loaded (other processes used more than {OTHERS_LIMIT} cores): no figure")
            continue
        grok = f"{r['grok_step']:>7d}" if r["grok_step"] else f"{'-':>7s}"
        line = (f"{name:30s} {grok} {r['ms_per_step']:8.1f} {r['seconds']:9.1f} "
                f"{r['cpu_ms_per_step']:12.1f} {r['cpu_seconds']:7.1f}")
        if ref:
            line += (f" {r['ms_per_step'] / ref['ms_per_step']:14.2f} {r['seconds'] / ref['seconds']:8.2f}"
                     f" {r['cpu_ms_per_step'] / ref['cpu_ms_per_step']:10.2f}")
        print(line, flush=True)


def main() -> None:
    if sys.argv[1:2] == ["--pack"]:
        return pack_bench(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated from: {', '.join(CASES)}")
    parser.add_argument("--max-steps", type=int, default=3000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, help="torch CPU threads in each case (default: torch's own)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of every case; medians are reported")
    parser.add_argument("--reference", default="baseline_transformer_eval100", help="the case ratios are to")
    parser.add_argument("--json", type=Path, help="also write the results here (after every round)")
    parser.add_argument("--run-case", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    if args.run_case:
        return run_case(args.run_case, args.max_steps, args.device, args.threads)
    names = args.cases.split(",")
    unknown = [name for name in names if name not in CASES]
    if unknown:
        parser.error(f"--cases {unknown[0]}: no such case; allowed: {', '.join(CASES)}")
    host = machine()
    print(f"device: {args.device}; {describe(host)}; torch {torch.__version__}, threads {args.threads or torch.get_num_threads()}")
    runs = {name: [] for name in names}
    for round_number in range(1, args.repeat + 1):
        for name in names:
            runs[name].append(time_case(name, args))
            print(f"round {round_number} {name}: {runs[name][-1]}{loaded_note(runs[name][-1])}", flush=True)
        results = {name: summarise(case_runs) for name, case_runs in runs.items()}
        if args.json:
            setup = {"device": args.device, "machine": host, "threads": args.threads, "rounds": round_number,
                     "others_limit_cores": OTHERS_LIMIT}
            args.json.write_text(json.dumps({**setup, "results": results, "runs": runs}, indent=2) + "\n")
    print_table(results, args.reference)


if __name__ == "__main__":
    main()
