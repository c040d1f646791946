"""Commit markers: the dativo.* keys each commit writes into its snapshot summary, read back.

They make commits self-describing: the Singer state a commit covers (for recovery and
`dativo state show`) and its commit id (so a retry after an uncertain commit can tell whether the
commit already landed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pyiceberg.table import Table

from target_dativo_iceberg.iceberg.lineage import lineage

STATE_KEY = "dativo.singer-state"
COMMIT_KEY = "dativo.commit-id"


@dataclass
class CommittedState:
    """The newest Singer state committed on a branch of one table."""

    table: str
    branch: str
    snapshot_id: int
    timestamp_ms: int
    run_id: str | None
    stream: str | None
    state: dict[str, Any]


def _props(snapshot: Any) -> dict[str, str]:
    return snapshot.summary.additional_properties if snapshot and snapshot.summary else {}


def committed_state(table: Table, branch: str) -> CommittedState | None:
    """Walk the branch from its head to the newest snapshot carrying a Singer state."""
    head = table.snapshot_by_name(branch)
    for snap in lineage(table.metadata, head):
        props = _props(snap)
        if STATE_KEY in props:
            return CommittedState(
                table=".".join(table.name()[-2:]),
                branch=branch,
                snapshot_id=snap.snapshot_id,
                timestamp_ms=snap.timestamp_ms,
                run_id=props.get("dativo.run-id"),
                stream=props.get("dativo.stream"),
                state=json.loads(props[STATE_KEY]),
            )
    return None


def find_commit(table: Table, branch: str, commit_id: str, depth: int = 50) -> int | None:
    """Snapshot id of the commit with `commit_id` among the branch's newest `depth` snapshots."""
    head = table.snapshot_by_name(branch)
    for i, snap in enumerate(lineage(table.metadata, head)):
        if i >= depth:
            break
        if _props(snap).get(COMMIT_KEY) == commit_id:
            return snap.snapshot_id
    return None


def stream_marker(
    table: Table, branch: str, stream: str, depth: int = 200
) -> tuple[dict[str, Any], str] | None:
    """The newest commit of `stream` on the branch: its covered Singer state and replay marker text."""
    head = table.snapshot_by_name(branch)
    for i, snap in enumerate(lineage(table.metadata, head)):
        if i >= depth:
            break
        props = _props(snap)
        if props.get("dativo.stream") == stream and "dativo.replay" in props:
            return json.loads(props.get(STATE_KEY) or "{}"), props["dativo.replay"]
    return None
