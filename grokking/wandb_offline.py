"""Read W&B offline run files (`run-<id>.wandb`) back, without the network.

wandb 0.31 ships no Python reader any more (the old `wandb.sdk.internal.datastore` went
with the move to the Go core), so the format is parsed here. A `.wandb` file is a 7-byte
header (b":W&B", magic 0xBEE1, version 0) followed by a LevelDB-style log: 32 KiB blocks of
chunks, each a 7-byte header (crc32, length, type FULL/FIRST/MIDDLE/LAST) and data; a block
tail too short for a chunk header is zero padding. Each reassembled payload is one
`wandb_internal_pb2.Record` (run, config, metric, history, summary, exit, ...) whose values are JSON.

A resumed run (same id) is a further file in its own `offline-run-...-<id>[-N]` folder,
holding only what was logged after the resume; `wandb sync` uploads such files in order.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from wandb.proto import wandb_internal_pb2 as pb

_FILE_HEADER = struct.Struct("<4sHB")
_CHUNK_HEADER = struct.Struct("<IHB")
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    run_id: str
    name: str
    group: str
    project: str
    tags: list[str]
    config: dict
    history: list[dict]
    summary: dict
    metrics: dict[str, dict] = field(default_factory=dict)  # define_metric: name or glob -> options
    entity: str = ""
    resumed: bool = False
    exit_code: int | None = None  # None: the run never finished (crashed or still running)
    path: Path | None = field(default=None, repr=False)


def find_offline_runs(root: Path) -> list[Path]:
    """The `.wandb` files under root, sorted by path (so resumed fragments follow the first).

    Symlinked folders (W&B's `latest-run`) are not followed, so each file appears once.
    """
    return sorted(
        Path(folder) / name
        for folder, _, names in os.walk(root)
        for name in names
        if name.endswith(".wandb")
    )


def read_run(wandb_file: Path) -> OfflineRun:
    """Decode one run file; a truncated tail (killed run) ends the read quietly."""
    run = OfflineRun("", "", "", "", [], {}, [], {}, path=Path(wandb_file))
    for record in _records(Path(wandb_file)):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            _read_run_record(run, record.run)
        elif kind == "config":
            _apply(run.config, record.config.update, record.config.remove)
        elif kind == "history":
            run.history.append(_apply({}, record.history.item, []))
        elif kind == "summary":
            _apply(run.summary, record.summary.update, record.summary.remove)
        elif kind == "metric":
            _read_metric(run.metrics, record.metric)
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    run.config.pop("_wandb", None)
    run.summary.pop("_wandb", None)
    return run


def _read_run_record(run: OfflineRun, rec) -> None:
    run.run_id, run.name, run.group = rec.run_id, rec.display_name, rec.run_group
    run.project, run.entity, run.tags, run.resumed = rec.project, rec.entity, list(rec.tags), rec.resume
    _apply(run.config, rec.config.update, rec.config.remove)


def _read_metric(metrics: dict, rec) -> None:
    """A define_metric record as {"step_metric": name or "", "summary": ["max", "last", ...]}."""
    aggregates = [f.name for f, on in rec.summary.ListFields() if on]
    metrics[rec.name or rec.glob_name] = {"step_metric": rec.step_metric, "summary": aggregates}


def _apply(target: dict, updates, removes) -> dict:
    """Apply W&B key/value items (`key`, or `nested_key` path, + `value_json`) to target."""
    for item in updates:
        *parents, leaf = _key_path(item)
        node = target
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = json.loads(item.value_json)
    for item in removes:
        *parents, leaf = _key_path(item)
        node = target
        for key in parents:
            node = node.get(key, {})
        node.pop(leaf, None)
    return target


def _key_path(item) -> list[str]:
    return list(item.nested_key) or [item.key]


def _records(path: Path):
    """Yield the Records of a `.wandb` file."""
    data = path.read_bytes()
    ident, magic, version = _FILE_HEADER.unpack_from(data)
    if (ident, magic, version) != (b":W&B", 0xBEE1, 0):
        raise ValueError(f"{path}: not a W&B run file (header {ident!r}, {magic:#x}, {version})")
    pos, payload = _FILE_HEADER.size, b""
    while True:
        room = _BLOCK - pos % _BLOCK
        if room < _CHUNK_HEADER.size:
            pos += room
        if pos + _CHUNK_HEADER.size > len(data):
            return
        crc, length, kind = _CHUNK_HEADER.unpack_from(data, pos)
        start = pos + _CHUNK_HEADER.size
        chunk = data[start : start + length]
        if len(chunk) < length or zlib.crc32(chunk, zlib.crc32(bytes([kind]))) != crc:
            return
        pos = start + length
        payload = chunk if kind in (_FULL, _FIRST) else payload + chunk
        if kind in (_FULL, _LAST):
            record = pb.Record()
            record.ParseFromString(payload)
            yield record
