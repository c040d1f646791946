"""Upkeep by the target after commits and runs: compact the partitions the run wrote to, expire.

It runs once the STATE of the commit (or the run's last STATE) is printed, so it never delays STATE
for committed data, and a failure in it never fails the load: it is reported as a
`maintenance_failed` event and the exit code stays what the load earned. Only partitions the run
added files to since the branch's last compaction are considered, and only when they hold more than
`auto_compact_min_files` small files, so a run pays for compaction only where it made files small
(`dativo maintain` does the rest: whole tables, every branch, orphans).
"""

from __future__ import annotations

import typing as t
from collections.abc import Iterable

from pyiceberg.manifest import ManifestEntryStatus
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from target_dativo_iceberg.iceberg.branches import COMPACTION, OPERATION_KEY
from target_dativo_iceberg.iceberg.compaction import compact
from target_dativo_iceberg.iceberg.lineage import lineage
from target_dativo_iceberg.iceberg.maintenance import expire_old_snapshots, expire_reporting

if t.TYPE_CHECKING:
    from target_dativo_iceberg.events import EventLog
    from target_dativo_iceberg.iceberg.committer import Committer
    from target_dativo_iceberg.settings import Settings

#: Snapshots of the branch searched back for the run's commits since the last compaction.
RUN_DEPTH = 1000


def _since_compaction(table: Table, branch: str, run_id: str) -> list[Snapshot]:
    """The run's snapshots on `branch` newer than the branch's last compaction, newest first."""
    found: list[Snapshot] = []
    for depth, snap in enumerate(lineage(table.metadata, table.snapshot_by_name(branch))):
        props = snap.summary.additional_properties if snap.summary else {}
        if depth >= RUN_DEPTH or props.get(OPERATION_KEY) == COMPACTION:
            break
        if props.get("dativo.run-id") == run_id:
            found.append(snap)
        elif found:
            break  # past the run's commits
    return found


def touched_partitions(table: Table, snapshots: Iterable[Snapshot]) -> set[str]:
    """Partition paths of the data files `snapshots` added."""
    found: set[str] = set()
    for snap in snapshots:
        for manifest in snap.manifests(table.io):
            if manifest.added_snapshot_id != snap.snapshot_id:
                continue
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                if entry.status == ManifestEntryStatus.ADDED:
                    spec = table.metadata.specs()[entry.data_file.spec_id]
                    path = spec.partition_to_path(entry.data_file.partition, table.schema())
                    found.add("" if spec.is_unpartitioned() else path)
    return found


def _added_files(snap: Snapshot) -> int:
    props = snap.summary.additional_properties if snap.summary else {}
    return int(props.get("added-data-files", 0))


def _compact_recent(table: Table, settings: Settings, events: EventLog, snapshots: list[Snapshot]) -> None:
    branch = settings.table_branch
    result = compact(
        table,
        branch,
        settings.parquet_target_bytes,
        events,
        min_files=settings.auto_compact_min_files + 1,
        partitions=touched_partitions(table, snapshots),
    )
    if result is not None:
        events.emit(
            "table_compacted",
            table=".".join(table.name()[-2:]),
            branch=branch,
            files_before=result.files_before,
            files_after=result.files_after,
            rows=result.rows,
        )


def after_commit(table: Table, settings: Settings, events: EventLog, stream: str, run_id: str) -> None:
    """After a commit, once its STATE is out: expire when due, and compact the partitions the run
    wrote to each time another `auto_compact_min_files` + 1 files have been added since the last
    compaction (a long run of small commits would otherwise pile up files and manifests, and every
    commit reads and rewrites the branch's manifest list: 100 → 840 ms per commit over 1,000
    commits). Failures are `maintenance_failed` events."""
    expire_reporting(table, settings, events, stream)
    every = settings.auto_compact_min_files + 1
    if settings.auto_compact_min_files <= 0:
        return
    try:
        recent = _since_compaction(table, settings.table_branch, run_id)
        added = sum(_added_files(s) for s in recent)
        if recent and added // every > (added - _added_files(recent[0])) // every:
            _compact_recent(table, settings, events, recent)
    except Exception as exc:  # maintenance only: the commit already holds
        events.emit("maintenance_failed", stream=stream, action="compact", error=events.redact(str(exc)))


def after_run(
    committer: Committer, identifiers: Iterable[tuple[str, str]], events: EventLog, run_id: str
) -> None:
    """Compact what the run made small since the last compaction and expire, per table; failures
    become events."""
    settings = committer.settings
    branch = settings.table_branch
    for identifier in sorted(identifiers):
        name = ".".join(identifier)
        try:
            table = committer.existing_table(identifier)
            if table is None:
                continue
            recent = _since_compaction(table, branch, run_id)
            if settings.auto_compact_min_files > 0 and recent:
                _compact_recent(table, settings, events, recent)
            expired = expire_old_snapshots(table, settings.max_snapshots, settings.max_snapshot_age_hours)
            if expired:
                events.emit("snapshots_expired", table=name, count=expired)
        except Exception as exc:  # maintenance only: the load already holds
            events.emit("maintenance_failed", table=name, branch=branch, error=events.redact(str(exc)))
