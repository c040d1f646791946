"""Keeping reads and writes inside configured roots: containment checks for paths from input.

BATCH manifests name files to read; they come from a tap's output the target does not control,
so every such path is checked before it is used (see docs/ingestion-execution.md).
"""

from __future__ import annotations

import os


def path_within(path: str, roots: tuple[str, ...] | list[str]) -> bool:
    """Whether the real path `path` is one of `roots` (real paths) or below one."""
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)
