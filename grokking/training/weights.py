"""``init_from``: start a run from another run's weights."""
from __future__ import annotations

from pathlib import Path

import torch

from grokking.errors import ConfigError


def load_weights(model, source: str) -> None:
    """Load a checkpoint file's, or a run folder's (its checkpoints/last.pt), model weights."""
    path = Path(source)
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if not path.is_file():
        raise ConfigError(f"init_from={source}: no checkpoint there (give a .pt file or a run folder)")
    state = torch.load(path, map_location="cpu", weights_only=False)["model"]
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise ConfigError(f"init_from={source} does not fit this model: {first}") from None
