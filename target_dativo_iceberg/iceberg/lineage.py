"""Snapshot ancestry that survives expiry: a branch's history walked through expired gaps.

Expiry removes old snapshots from the middle of a branch's history (an unpublished tenant branch
grows by one snapshot per commit and is never published by many users). A kept snapshot whose
parent was expired would end its history there, and `dativo branch publish` could no longer prove
that main's head is its ancestor. So expiry records, for each kept snapshot whose parent it removes,
the nearest kept ancestor as a table property `dativo.ancestor.<snapshot id>` = `<ancestor id>`.
Ancestry is immutable, so such a link stays true; `lineage()` follows the parent when it exists and
the recorded link otherwise. Links of expired snapshots are dropped by the next expiry.
"""

from __future__ import annotations

from collections.abc import Iterator

from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.snapshots import Snapshot

LINK_PREFIX = "dativo.ancestor."


def links(metadata: TableMetadata) -> dict[int, int]:
    """Recorded ancestor links: kept snapshot id → nearest kept ancestor id."""
    found: dict[int, int] = {}
    for key, value in metadata.properties.items():
        if key.startswith(LINK_PREFIX):
            try:
                found[int(key[len(LINK_PREFIX) :])] = int(value)
            except ValueError:
                continue
    return found


def lineage(metadata: TableMetadata, snapshot: Snapshot | None) -> Iterator[Snapshot]:
    """`snapshot` and its ancestors, newest first, across expired gaps (see the module docstring)."""
    recorded = links(metadata)
    by_id = {s.snapshot_id: s for s in metadata.snapshots}
    seen: set[int] = set()
    current = snapshot
    while current is not None and current.snapshot_id not in seen:
        seen.add(current.snapshot_id)
        yield current
        parent = current.parent_snapshot_id
        following = by_id.get(parent) if parent is not None else None
        if following is None and current.snapshot_id in recorded:
            following = by_id.get(recorded[current.snapshot_id])
        current = following


def lineage_ids(metadata: TableMetadata, snapshot: Snapshot | None) -> list[int]:
    """Ids of `lineage(metadata, snapshot)`."""
    return [s.snapshot_id for s in lineage(metadata, snapshot)]
