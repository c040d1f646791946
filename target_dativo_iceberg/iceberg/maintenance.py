"""Snapshot expiry: keep table metadata small so commit latency stays flat over many commits.

pyiceberg rewrites the whole metadata file on every commit; with hundreds of snapshots a commit
slows from ~30 ms to ~350 ms. After a commit, when a table holds more than `max_snapshots`
(+ slack), the oldest snapshots are expired, except:

- every branch and tag head (pyiceberg protects those);
- every snapshot on a branch's own history back to where it forked from main, so `dativo branch
  diff/publish` can still prove main is an ancestor of the branch;
- the newest `max_snapshots` snapshots of main's history;
- the newest snapshot of each stream carrying commit markers (`dativo.singer-state`, `dativo.replay`).

Data files only referenced by expired snapshots are dropped from metadata (not deleted from storage;
orphan-file cleanup is a separate job).
"""

from __future__ import annotations

import typing as t

from pyiceberg.table import Table
from pyiceberg.table.snapshots import ancestors_of

if t.TYPE_CHECKING:
    from target_dativo_iceberg.events import EventLog

SLACK = 20  # expire in chunks, not on every commit


def protected_snapshots(table: Table, max_snapshots: int) -> set[int]:
    """Snapshot ids that must survive expiry."""
    meta = table.metadata
    main = table.snapshot_by_name("main")
    main_chain = [s.snapshot_id for s in ancestors_of(main, meta)]
    keep = set(main_chain[:max_snapshots])
    main_set = set(main_chain)
    newest_marker: dict[str, int] = {}
    for name, ref in meta.refs.items():
        keep.add(ref.snapshot_id)
        if name == "main":
            continue
        for snap in ancestors_of(table.snapshot_by_id(ref.snapshot_id), meta):
            keep.add(snap.snapshot_id)
            if snap.snapshot_id in main_set:
                break
    for snap in sorted(meta.snapshots, key=lambda s: s.timestamp_ms, reverse=True):
        props = snap.summary.additional_properties if snap.summary else {}
        stream = props.get("dativo.stream")
        if stream and "dativo.singer-state" in props and stream not in newest_marker:
            newest_marker[stream] = snap.snapshot_id
    return keep | set(newest_marker.values())


def expire_old_snapshots(table: Table, max_snapshots: int) -> list[int]:
    """Expire what `protected_snapshots` does not keep, once the table exceeds the limit."""
    if max_snapshots <= 0 or len(table.metadata.snapshots) <= max_snapshots + SLACK:
        return []
    keep = protected_snapshots(table, max_snapshots)
    expire = [s.snapshot_id for s in table.metadata.snapshots if s.snapshot_id not in keep]
    if expire:
        table.maintenance.expire_snapshots().by_ids(expire).commit()
    return expire


def expire_reporting(table: Table, max_snapshots: int, events: EventLog, stream: str) -> None:
    """Expire after a commit; a failed expiry is reported (`maintenance_failed`), not raised: the
    commit before it already holds."""
    try:
        expired = expire_old_snapshots(table, max_snapshots)
    except Exception as exc:  # maintenance only
        events.emit("maintenance_failed", stream=stream, error=events.redact(str(exc)))
        return
    if expired:
        events.emit("snapshots_expired", stream=stream, count=len(expired))
