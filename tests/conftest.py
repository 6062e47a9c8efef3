"""Shared pytest fixtures (markers are registered in pyproject.toml)."""

import pytest

from tests.slurm_fixture import slurm_cluster  # noqa: F401  (session fixture: the local SLURM cluster)


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """W&B offline and quiet, with nothing written outside tmp_path (online mode hangs here), and
    none of the user's WANDB_* settings (a run's W&B files go to its run folder, our default)."""
    for var in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_RUN_ID", "WANDB_RESUME", "WANDB_DIR",
                "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_RUN_GROUP", "WANDB_NAME", "WANDB_NOTES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb_home"))
