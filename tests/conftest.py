"""Fixtures shared by the Meltano, pipe and lock file tests."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout under test."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def bin_dir() -> Path:
    """Console scripts of the environment running the tests (tap-dativo-csv, meltano, ...)."""
    return Path(sys.executable).parent


@pytest.fixture(scope="session")
def tool_env() -> dict[str, str]:
    """Environment for subprocesses: Meltano offline and quiet, our venv first on PATH."""
    env = dict(os.environ)
    env.update(
        MELTANO_SEND_ANONYMOUS_USAGE_STATS="false",
        MELTANO_CLI_DISABLE_VERSION_CHECK="1",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    )
    for name in ("MELTANO_PROJECT_ROOT", "MELTANO_ENVIRONMENT", "MELTANO_STATE_BACKEND_URI"):
        env.pop(name, None)
    return env
