"""Splitting the matched files across workers: `shard_count` / `shard_index`.

A file belongs to shard `sha256(path) mod shard_count`, `path` being the file's state key (the
local path as the configured pattern matched it, or `s3://bucket/key`). The split depends on the
file alone, never on its position in a listing, so a file that arrives later never moves other
files between shards, and N workers with the same settings read disjoint sets that together cover
every file. SHA-256 rather than Python's `hash()`: that one is salted per process.
"""

from __future__ import annotations

import hashlib
import typing as t

SETTINGS = ("shard_count", "shard_index")


def shard_of(path: str, count: int) -> int:
    """The shard (0 … count-1) a file path belongs to."""
    digest = hashlib.sha256(path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def shard_settings(config: t.Mapping[str, t.Any]) -> tuple[tuple[int, int], list[str]]:
    """(`shard_count`, `shard_index`) from config, with problems naming the setting."""
    count, index = config.get("shard_count"), config.get("shard_index")
    count = 1 if count is None else count
    index = 0 if index is None else index
    problems = []
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        problems.append(f"shard_count must be an integer of at least 1, got {count!r}")
        count = 1
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < count:
        problems.append(
            f"shard_index must be an integer from 0 to shard_count - 1 ({count - 1}), got {index!r}"
        )
        index = 0
    return (count, index), problems
