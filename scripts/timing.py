"""Whole-process timings that know whether the machine was quiet, shared by the benchmarks.

A timing is one command run to its end as a user runs it. Beside its wall and CPU seconds it
records the load average before and after, and the CPU time the rest of the machine used
meanwhile (from /proc/stat, less the timed process's own): a timing during which other processes
used more than ``OTHERS_LIMIT`` cores is marked ``loaded``, and the benchmarks leave loaded
timings out of their medians and report no figure where every round was loaded. The load
average is recorded but does not decide: it still holds the previous timing's own load for a
minute after it.
"""
from __future__ import annotations

import os
import platform
import resource
import subprocess
import time
from pathlib import Path

OTHERS_LIMIT = 0.2  # cores that other processes may use during a timing before it counts as loaded


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (every core, /proc/stat's first line)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def timed(args: list[str], what: str = "") -> tuple[dict, str]:
    """Run one command to its end: ({wall_s, cpu_s, load_before, load_after, others_cores,
    loaded}, its standard output). A failing command stops the benchmark with its error."""
    load_before, busy_before = os.getloadavg()[0], busy_seconds()
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"bench: {what or ' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    others = max(0.0, busy_seconds() - busy_before - cpu) / wall
    return {"wall_s": wall, "cpu_s": cpu, "load_before": load_before, "load_after": os.getloadavg()[0],
            "others_cores": others, "loaded": others > OTHERS_LIMIT}, done.stdout


def loaded_note(timing: dict) -> str:
    return (f" (loaded: others used {timing['others_cores']:.2f} cores, load {timing['load_before']:.2f} -> "
            f"{timing['load_after']:.2f})" if timing["loaded"] else "")


def machine() -> dict:
    """What the figures were measured on, with the fp32 matrix-product rate of 1024 x 1024
    products on all cores: the practical peak a FLOP rate is compared to."""
    import torch

    a = torch.randn(1024, 1024)
    torch.mm(a, a)
    started = time.perf_counter()
    for _ in range(20):
        torch.mm(a, a)
    matmul = 20 * 2 * 1024**3 / (time.perf_counter() - started)
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    return {"cpu": model, "cores": os.cpu_count(), "gpu": gpu, "torch": torch.__version__,
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "commit": commit, "load_average": os.getloadavg()[0], "matmul_gflops_fp32_1024": matmul / 1e9}


def describe(m: dict) -> str:
    return (f"{m['cpu']}, {m['cores']} cores, GPU {m['gpu']}; load average {m['load_average']:.2f}; "
            f"fp32 matrix product {m['matmul_gflops_fp32_1024']:.0f} GFLOP/s")
