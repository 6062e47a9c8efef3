"""What a test does when a service it needs (the local SLURM cluster, a headless browser, an
optional package such as TransformerLens) cannot be set up on this machine: skip with the reason,
except where the suite must prove it ran those tests.

``.ci/run`` sets GROKKING_REQUIRE_SERVICES=1: there a missing service fails the test instead of
skipping it, so a CI run that silently skipped the real-cluster or browser tests cannot land.
"""
from __future__ import annotations

import os

import pytest

REQUIRED = os.environ.get("GROKKING_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    """Skip the test (or fail it under GROKKING_REQUIRE_SERVICES=1), saying why."""
    if REQUIRED:
        pytest.fail(f"required service unavailable: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=True)
