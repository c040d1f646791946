"""Arrow's allocator in the target's process: 4 KB pages unless the user chose otherwise."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = (
    "import target_dativo_iceberg, pyarrow as pa; "
    "pa.allocate_buffer(1 << 20); print(pa.default_memory_pool().backend_name)"
)


def _run(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MIMALLOC_")}
    return subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, "MIMALLOC_VERBOSE": "1", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_arrow_allocates_without_transparent_huge_pages() -> None:
    run = _run({})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "mimalloc"
    assert "option 'allow_thp': 0" in run.stderr  # what mimalloc itself reports it uses


def test_a_value_the_user_set_wins() -> None:
    run = _run({"MIMALLOC_ALLOW_THP": "1"})
    assert run.returncode == 0, run.stderr
    assert "option 'allow_thp': 1" in run.stderr
