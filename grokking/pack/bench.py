"""Packed against unpacked: the same grid, the same work, whole processes.

    python -m grokking.pack.bench --recipe "p=47 frac=0.5" --members 16 --steps 300 --repeat 3
    python scripts/bench.py --pack ...      (the same, from the benchmark script)

``unpacked`` runs one ``python -m grokking.train`` process per member, one after another (as a
grid of single runs does today); ``packed`` runs one process that trains all members as one
``PackedRun``. Both evaluate train and validation every ``eval_every`` steps and skip the extra
metrics and checkpoints, and both count the whole processes (interpreter and torch start-up
included). Each side is timed ``--repeat`` times, interleaved, and the medians are compared; the
loop-only steps per second of the packed process are reported as well, and CPU seconds (user +
system) next to wall seconds. On a machine that other jobs share, trust the ratios more than the
seconds.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMON = ["progress=none", "metrics.every=0", "checkpoint_every=1000000"]


def member_overrides(recipe: list[str], members: int, steps: int, device: str) -> list[list[str]]:
    """Member i of the grid: the recipe with seed=i."""
    return [recipe + COMMON + [f"seed={i}", f"steps={steps}", f"device={device}"] for i in range(members)]


def timed(args: list[str]) -> tuple[float, float, str]:
    """Wall seconds, CPU seconds (user + system) and stdout of one child process."""
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return time.perf_counter() - started, cpu, out


def run_unpacked(grid: list[list[str]], threads: int | None, sample: int) -> tuple[float, float, float]:
    """Wall and CPU seconds of one solo process per member, one after another, and the seconds
    of their training loops (``wall_time_s`` of their summaries). Every member does the same
    work, so with ``sample`` < members only that many run and the times are scaled."""
    wall = cpu = 0.0
    with tempfile.TemporaryDirectory() as out:
        for overrides in grid[:sample]:
            extra = [f"out_dir={out}"] + ([f"threads={threads}"] if threads else [])
            w, c, _ = timed([sys.executable, "-m", "grokking.train", *overrides, *extra])
            wall, cpu = wall + w, cpu + c
        loop = sum(json.loads(p.read_text())["wall_time_s"] for p in Path(out).rglob("summary.json"))
    scale = len(grid) / min(sample, len(grid))
    return wall * scale, cpu * scale, loop * scale


def run_packed(grid: list[list[str]], threads: int | None) -> tuple[float, float, float]:
    """Wall and CPU seconds of one process training the grid as a pack, and its loop's
    member-steps per second."""
    args = [sys.executable, "-m", "grokking.pack.bench", "--worker", json.dumps(grid)]
    wall, cpu, out = timed(args + (["--threads", str(threads)] if threads else []))
    return wall, cpu, json.loads(out.splitlines()[-1])["member_steps_per_s"]


def worker(grid: list[list[str]], threads: int | None) -> None:
    """The packed process: build the pack, train ``steps`` steps evaluating every ``eval_every``."""
    import torch

    from grokking.config import compose_config
    from grokking.training.device import pick_device
    from grokking.training.engines.build import build_member
    from grokking.training.engines.packed import PackedRun

    if threads:
        torch.set_num_threads(threads)
    cfgs = [compose_config(overrides) for overrides in grid]
    device = pick_device(cfgs[0].device)
    pack = PackedRun([build_member(cfg, device, fresh=True) for cfg in cfgs], device)
    steps, eval_every, active, idx = cfgs[0].steps, cfgs[0].eval_every, [True] * len(cfgs), list(range(len(cfgs)))
    started = time.perf_counter()
    pack.evaluate(idx, [False] * len(cfgs))
    for step in range(1, steps + 1):
        pack.step(active)
        if step % eval_every == 0:
            pack.evaluate(idx, [False] * len(cfgs))
    seconds = time.perf_counter() - started
    print(json.dumps({"member_steps_per_s": len(cfgs) * steps / seconds}))


def compare(recipe: list[str], members: int, steps: int, repeat: int, device: str, threads: int | None,
            sample: int) -> dict:
    grid = member_overrides(recipe, members, steps, device)
    runs = []
    for _ in range(repeat):  # interleaved, so that a burst of load on a shared machine hits both
        runs.append((*run_unpacked(grid, threads, sample), *run_packed(grid, threads)))
    unpacked_wall, unpacked_cpu, unpacked_loop, packed_wall, packed_cpu, rates = (list(c) for c in zip(*runs))
    median = statistics.median
    solo_rate = members * steps / median(unpacked_loop)
    return {"recipe": " ".join(recipe), "members": members, "steps": steps, "device": device,
            "threads": threads or os.cpu_count(), "solo_processes_timed": min(sample, members),
            "unpacked_wall_s": unpacked_wall, "packed_wall_s": packed_wall,
            "unpacked_cpu_s": unpacked_cpu, "packed_cpu_s": packed_cpu,
            "packed_loop_member_steps_per_s": median(rates), "solo_loop_steps_per_s": solo_rate,
            "speedup_loop": median(rates) / solo_rate,
            "speedup_wall": median(unpacked_wall) / median(packed_wall),
            "speedup_cpu": median(unpacked_cpu) / median(packed_cpu)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="p=47 frac=0.5", help="overrides shared by every member")
    parser.add_argument("--members", type=int, default=16, help="grid size (seeds 0..members-1)")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads in every process (default: torch's)")
    parser.add_argument("--solo-sample", type=int, default=10**9,
                        help="time only this many of the solo processes and scale (default: all)")
    parser.add_argument("--json", type=Path, help="append the result to this JSON-lines file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(json.loads(args.worker), args.threads)
    r = compare(args.recipe.split(), args.members, args.steps, args.repeat, args.device, args.threads,
                args.solo_sample)
    median = statistics.median
    print(f"{r['recipe']}: {r['members']} members x {r['steps']} steps on {r['device']}, threads {r['threads']}, "
          f"medians of {args.repeat} (solo processes timed: {r['solo_processes_timed']})")
    for kind in ("wall", "cpu"):
        print(f"  {kind:4s}  unpacked {median(r[f'unpacked_{kind}_s']):8.1f} s   packed "
              f"{median(r[f'packed_{kind}_s']):8.1f} s   speedup {r[f'speedup_{kind}']:.2f}x")
    print(f"  loop  solo {r['solo_loop_steps_per_s']:.1f} steps/s   packed {r['packed_loop_member_steps_per_s']:.1f} "
          f"member-steps/s   speedup {r['speedup_loop']:.2f}x   (training loops and evaluations, no start-up)")
    if args.json:
        with args.json.open("a") as f:
            f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
