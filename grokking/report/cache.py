"""A run's numbers for its report, read from its checkpoints and cached beside the record.

Every snapshot the report shows (``checkpoints/step_*.pt``, at most ``max_snapshots`` of them,
evenly spread, the first and last always; plus the model at step 0, rebuilt from the seed) is
evaluated once on the whole table: losses, accuracies, which pairs it gets right, and those metrics
of ``grokking.metrics`` (weight norm, Fourier IPR, feature rank, restricted/excluded loss) that
the run did not log, so a run trained with ``metrics.every=0`` still gets its curves. The results are kept in
``<run>/report/cache.pt``, keyed by each snapshot file's size and modification time, so a second
report, or one after the run went on, evaluates only the snapshots it has not seen.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm import tqdm

from grokking.data import Dataset, build_dataset
from grokking.errors import ConfigError
from grokking.inspect.load import initial_model
from grokking.inspect.progress import cos_coefficients, logit_cube
from grokking.metrics import MetricSuite, load_settings
from grokking.models import build_model, embedding
from grokking.record import RunRecord, atomic_write
from grokking.report import DEFAULT_SNAPSHOTS
from grokking.training.device import pick_device
from grokking.training.evaluate import evaluate

CACHE_VERSION = 1  # raise when what a snapshot's entry holds changes


@dataclass
class Snapshot:
    step: int
    stats: dict  # evaluate()'s values, the metrics, "correct": (pairs,) int8, and where the Fourier
    # views apply "embedding" (p, dims) (grokking.analyze.embedding) and "token_maps" [(p, units)];
    # for (a + b) mod p the logits' "cos_sim" (K,) per frequency and "logit_residual"
    rebuilt: bool = False  # the step-0 model rebuilt from the seed (no file)


@dataclass
class RunData:
    """Everything the tabs draw from."""

    dir: Path
    cfg: DictConfig
    data: Dataset  # on the CPU
    history: list[dict]  # metrics.jsonl
    summary: dict
    snapshots: list[Snapshot]  # oldest first; the last is the run's latest snapshot
    model: nn.Module  # at the last snapshot, on the CPU, eval mode
    initial: nn.Module | None  # at step 0 (rebuilt), None when it cannot be rebuilt

    @property
    def p(self) -> int | None:
        return self.data.modulus

    @property
    def last(self) -> Snapshot:
        return self.snapshots[-1]


def pick(paths: list[Path], count: int) -> list[Path]:
    """At most ``count`` of ``paths``, evenly spread, the first and the last always among them."""
    if len(paths) <= count:
        return paths
    return [paths[i] for i in sorted(set(np.linspace(0, len(paths) - 1, count).round().astype(int)))]


# a metric group, and the key that shows it was logged in metrics.jsonl
GROUP_KEYS = {"norms": "weight_norm", "fourier": "fourier_ipr", "rank": "feature_rank/", "restricted": "restricted_loss"}


def missing_groups(history: list[dict]) -> dict:
    """``<group>_every``: 1 for the metric groups the run did not log (the snapshots compute them),
    0 for those it did (the report draws them from metrics.jsonl; feature rank costs most)."""
    logged = {k for r in history for k in r}
    return {f"{group}_every": int(not any(k.startswith(key) for k in logged)) for group, key in GROUP_KEYS.items()}


def stamp(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_size, info.st_mtime_ns


@torch.no_grad()
def evaluate_snapshot(model, data, cfg, suite: MetricSuite, step: int) -> dict:
    values, logits, feats = evaluate(model, data, cfg, features=suite.wants_features)
    stats = {**values, **suite(step, logits, feats), "step": step}
    stats["correct"] = (logits.argmax(dim=-1) == data.labels).to(torch.int8).cpu().numpy()
    if suite.basis is not None:  # token values in Z_p: the Fourier views apply
        stats["embedding"] = embedding(model).detach().cpu().float().numpy()
        stats["token_maps"] = [m.detach().cpu().float().numpy() for m in model.token_maps()]
    if OmegaConf.select(cfg, "op.name") == "add" and suite.basis is not None:
        coeffs = cos_coefficients(logit_cube(logits.double(), data.inputs, data.modulus), data.modulus)
        stats["cos_sim"] = coeffs["cos_sim"].cpu().numpy()
        stats["logit_residual"] = coeffs["residual"]
    stats.pop("metrics/skipped", None)
    return stats


def load_cache(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        cached = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError):  # an unreadable cache is rebuilt, not an error
        return {}
    return cached["entries"] if cached.get("version") == CACHE_VERSION else {}


def load_run(run_dir: Path, max_snapshots: int = DEFAULT_SNAPSHOTS, device: str = "auto",
             progress: bool = True) -> RunData:
    """The run's record and its snapshots' numbers (from the cache where it has them)."""
    record = RunRecord(run_dir)
    paths = record.snapshots()
    if not paths:
        raise ConfigError(f"{run_dir}: no checkpoints/step_*.pt to report on (is it a run folder?)")
    paths = pick(paths, max_snapshots)
    last_state = torch.load(paths[-1], map_location="cpu", weights_only=False)
    cfg = OmegaConf.create(last_state["config"])
    run_device = pick_device(device)
    data = build_dataset(cfg)
    model = build_model(cfg, data)
    history = record.read_metrics()
    settings = load_settings(cfg, every=1, probe_every=0, **missing_groups(history))
    on_device = data.to(run_device)
    suite = MetricSuite(cfg, model.to(run_device), on_device, settings)
    model.load_state_dict(last_state["model"])
    if suite.enabled("restricted"):  # one set of key frequencies for the whole run, as analyze does
        suite.fixed_key_freqs = suite.key_freqs(evaluate(model, on_device, cfg, features=True)[2])
    key = (tuple(suite.fixed_key_freqs or ()), tuple(sorted(missing_groups(history).items())))

    cache_path = Path(run_dir) / "report" / "cache.pt"
    entries, fresh, changed = load_cache(cache_path), {}, False
    try:
        initial = initial_model(cfg, data)
    except ConfigError:  # init_from points at a run that is gone
        initial = None
    todo = ([("init", None)] if initial is not None and int(paths[0].stem.split("_")[1]) > 0 else [])
    todo += [(path.name, path) for path in paths]
    snapshots = []
    for name, path in tqdm(todo, desc="report: snapshots", unit="ckpt", disable=not progress, leave=False):
        entry_stamp = (stamp(path) if path else ("init",), key)
        entry = entries.get(name)
        if entry is None or entry["stamp"] != entry_stamp:
            state = last_state if path == paths[-1] else (
                {"model": initial.state_dict(), "step": 0} if path is None else
                torch.load(path, map_location="cpu", weights_only=False))
            model.load_state_dict(state["model"])
            entry = {"stamp": entry_stamp, "stats": evaluate_snapshot(model, on_device, cfg, suite, state["step"])}
            changed = True
        fresh[name] = entry
        snapshots.append(Snapshot(entry["stats"]["step"], entry["stats"], rebuilt=path is None))
    if changed or fresh.keys() != entries.keys():
        cache_path.parent.mkdir(exist_ok=True)
        atomic_write(cache_path, lambda tmp: torch.save({"version": CACHE_VERSION, "entries": fresh}, tmp))

    model.load_state_dict(last_state["model"])
    model.cpu().eval()
    return RunData(Path(run_dir), cfg, data, history, record.read_summary(), snapshots, model,
                   initial)
