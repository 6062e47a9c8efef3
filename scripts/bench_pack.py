"""Packed against unpacked: the same ``-m`` grid through the real command line, whole processes,
each timing checked for other load on the machine.

    python scripts/bench.py --pack                              # the CPU cases (p23_16, p47_8)
    python scripts/bench.py --pack --cases p47_8_long --repeat 2 # the p 47 grid 10x longer
    python scripts/bench.py --pack --device cuda                # the GPU cases (mlp_64 ... nanda2023_256)
    python scripts/bench.py --pack --cases p47_8 --repeat 5 --json docs/bench/pack_cpu.json

A case is seeds 0..M-1 of one recipe, evaluated every 50 steps with the extra metrics,
checkpoints, progress and loggers off. Three commands are timed as whole processes (start-up,
set-up, training, evaluations and the end of each run included):

- ``solo``: one run, seed 0: ``python -m grokking.train <recipe> seed=0``;
- ``unpacked``: the grid as one ``-m`` process that trains the runs one after another;
- ``packed``: the same grid with ``pack=M``.

The cases run in rounds (solo, unpacked, packed, then again), and the medians of the rounds are
compared; where a case skips ``unpacked`` (the GPU cases: 256 runs one after another would take
hours) its time is estimated as M x solo and says so. Every timing records the load around it
(scripts/timing.py): a round with a loaded timing is left out of the medians, and a case with no
quiet round reports no figure. ``--json`` writes every timing, the machine and its measured
matrix-product rate (the practical peak the FLOP rates compare to).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from timing import OTHERS_LIMIT, describe, loaded_note, machine, timed

COMMON = ["eval_every=50", "metrics.every=0", "checkpoint_every=1000000", "progress=none", "logger=none"]
# name: (recipe, members, steps, device, time the unpacked grid); the CPU pair are the issue's
# targets (docs/packing_speed.md), the long one shows where whole processes go as runs grow, the
# GPU cases are the 64- and 256-member grids
CASES = {
    "p23_16": (["p=23"], 16, 400, "cpu", True),
    "p47_8": (["p=47"], 8, 300, "cpu", True),
    "p47_8_long": (["p=47"], 8, 3000, "cpu", True),
    "mlp_64": ([], 64, 1000, "cuda", False),
    "mlp_256": ([], 256, 1000, "cuda", False),
    "nanda2023_64": (["experiment=nanda2023"], 64, 1000, "cuda", False),
    "nanda2023_256": (["experiment=nanda2023"], 256, 1000, "cuda", False),
}
DEFAULT_CASES = {"cpu": ["p23_16", "p47_8"], "cuda": [n for n, c in CASES.items() if c[3] == "cuda"]}


def loop_seconds(out: Path, packed: bool) -> float:
    """The training loops' time from the runs' summaries: the pack's loop is one (its longest
    member), one-after-another loops add up."""
    times = [json.loads(p.read_text())["wall_time_s"] for p in out.rglob("summary.json")]
    return max(times) if packed else sum(times)


def commands(recipe: list[str], members: int, steps: int, device: str, out: Path) -> dict[str, list[str]]:
    train = [sys.executable, "-m", "grokking.train"]
    base = [*recipe, *COMMON, f"steps={steps}", f"device={device}"]
    grid = ["-m", *base, "seed=" + ",".join(str(i) for i in range(members)), "launcher=basic"]
    return {"solo": train + base + ["seed=0", f"out_dir={out}/solo"],
            "unpacked": train + grid + [f"hydra.sweep.dir={out}/unpacked"],
            "packed": train + grid + [f"pack={members}", f"hydra.sweep.dir={out}/packed"]}


def run_case(name: str, repeat: int) -> dict:
    recipe, members, steps, device, unpacked = CASES[name]
    kinds = ["solo", "unpacked", "packed"] if unpacked else ["solo", "packed"]
    rounds = []
    for _ in range(repeat):
        timings = {}
        for kind in kinds:
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp)
                timings[kind], _ = timed(commands(recipe, members, steps, device, out)[kind], f"{name} {kind}")
                timings[kind]["loop_s"] = loop_seconds(out, kind == "packed")
        rounds.append(timings)
        print(f"  {name} round {len(rounds)}: " + ", ".join(
            f"{k} {t['wall_s']:.1f} s{loaded_note(t)}" for k, t in timings.items()), flush=True)
    return {"recipe": recipe, "members": members, "steps": steps, "device": device, "rounds": rounds,
            "flops_per_member_step": flops_per_member_step(recipe), **figures(rounds, members, unpacked)}


def figures(rounds: list[dict], members: int, unpacked: bool) -> dict:
    """Medians over the quiet rounds and the gains; nothing where no round was quiet."""
    quiet = [r for r in rounds if not any(t["loaded"] for t in r.values())]
    if not quiet:
        return {"quiet_rounds": 0, "verdict": "every round was loaded: no figure"}
    median = {kind: {key: statistics.median(r[kind][key] for r in quiet) for key in ("wall_s", "cpu_s", "loop_s")}
              for kind in quiet[0]}
    grid = median["unpacked"] if unpacked else {k: v * members for k, v in median["solo"].items()}
    return {"quiet_rounds": len(quiet), "median": median, "unpacked_estimated": not unpacked,
            "speedup_wall": grid["wall_s"] / median["packed"]["wall_s"],
            "speedup_loop": grid["loop_s"] / median["packed"]["loop_s"],
            "packed_over_solo_wall": median["packed"]["wall_s"] / median["solo"]["wall_s"]}


def flops_per_member_step(recipe: list[str]) -> float | None:
    """Forward and backward FLOPs of one member's step for an MLP with one-hot tokens: 6 per
    multiply-add of each dense layer and row (the first layer is a gather); None otherwise."""
    from grokking.config import compose_config
    from grokking.data import build_dataset
    from grokking.models import MLP, build_model

    cfg = compose_config(recipe)
    data = build_dataset(cfg)
    model = build_model(cfg, data)
    if not (isinstance(model, MLP) and model.embedding == "onehot"):
        return None
    dense = sum(p.numel() for n, p in model.named_parameters() if p.dim() == 2 and n != "token_weight")
    return 6.0 * len(data.train_idx) * dense


def report(name: str, r: dict) -> None:
    if not r["quiet_rounds"]:
        print(f"{name}: {r['verdict']}")
        return
    m = r["median"]
    grid = "M x solo" if r["unpacked_estimated"] else f"{m['unpacked']['wall_s']:.1f} s"
    print(f"{name}: {r['members']} x {r['steps']} steps on {r['device']}, medians of {r['quiet_rounds']} quiet rounds: "
          f"solo {m['solo']['wall_s']:.1f} s, unpacked {grid}, packed {m['packed']['wall_s']:.1f} s; "
          f"speedup {r['speedup_wall']:.2f}x whole processes, {r['speedup_loop']:.2f}x training loops; "
          f"packed / one solo run {r['packed_over_solo_wall']:.2f}")
    if r["flops_per_member_step"]:
        rate = r["flops_per_member_step"] * r["members"] * r["steps"] / m["packed"]["loop_s"] / 1e9
        print(f"  {r['flops_per_member_step'] / 1e6:.0f} MFLOP per member-step; packed loop {rate:.0f} GFLOP/s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="which cases run by default")
    parser.add_argument("--cases", help=f"comma-separated from: {', '.join(CASES)}")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the machine and every timing here")
    args = parser.parse_args(argv)
    names = args.cases.split(",") if args.cases else DEFAULT_CASES[args.device]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise SystemExit(f"bench: unknown case {unknown[0]}; allowed: {', '.join(CASES)}")
    result = {"machine": machine(), "others_limit_cores": OTHERS_LIMIT, "cases": {}}
    print(describe(result["machine"]), flush=True)
    for name in names:
        result["cases"][name] = run_case(name, args.repeat)
        report(name, result["cases"][name])
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
