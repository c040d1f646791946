"""Upkeep by the target after a run: compact the partitions the run wrote to, then expire.

Runs once the run's last STATE is printed, so it never delays STATE for committed data, and a
failure in it never fails the load: it is reported as a `maintenance_failed` event and the exit code
stays what the load earned. Only partitions the run added files to are considered, and only when
they hold more than `auto_compact_min_files` small files, so a run pays for compaction only where it
made files small (`dativo maintain` does the rest: whole tables, every branch, orphans).
"""

from __future__ import annotations

import typing as t
from collections.abc import Iterable

from pyiceberg.manifest import ManifestEntryStatus
from pyiceberg.table import Table

from target_dativo_iceberg.iceberg.compaction import compact
from target_dativo_iceberg.iceberg.lineage import lineage
from target_dativo_iceberg.iceberg.maintenance import expire_old_snapshots

if t.TYPE_CHECKING:
    from target_dativo_iceberg.events import EventLog
    from target_dativo_iceberg.iceberg.committer import Committer

#: Snapshots of the branch searched for the run's commits.
RUN_DEPTH = 1000


def touched_partitions(table: Table, branch: str, run_id: str) -> set[str]:
    """Partition paths of the data files the run's commits on `branch` added."""
    found: set[str] = set()
    for depth, snap in enumerate(lineage(table.metadata, table.snapshot_by_name(branch))):
        if depth >= RUN_DEPTH:
            break
        props = snap.summary.additional_properties if snap.summary else {}
        if props.get("dativo.run-id") != run_id:
            if found:
                break  # past the run's commits
            continue
        for manifest in snap.manifests(table.io):
            if manifest.added_snapshot_id != snap.snapshot_id:
                continue
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                if entry.status == ManifestEntryStatus.ADDED:
                    spec = table.metadata.specs()[entry.data_file.spec_id]
                    label = (
                        ""
                        if spec.is_unpartitioned()
                        else spec.partition_to_path(entry.data_file.partition, table.schema())
                    )
                    found.add(label)
    return found


def after_run(
    committer: Committer, identifiers: Iterable[tuple[str, str]], events: EventLog, run_id: str
) -> None:
    """Compact what the run made small and expire, per table; failures become events."""
    settings = committer.settings
    branch = settings.table_branch
    for identifier in sorted(identifiers):
        name = ".".join(identifier)
        try:
            table = committer.existing_table(identifier)
            if table is None:
                continue
            if settings.auto_compact_min_files > 0:
                partitions = touched_partitions(table, branch, run_id)
                result = compact(
                    table,
                    branch,
                    settings.parquet_target_bytes,
                    events,
                    min_files=settings.auto_compact_min_files + 1,
                    partitions=partitions,
                )
                if result is not None:
                    events.emit(
                        "table_compacted",
                        table=name,
                        branch=branch,
                        files_before=result.files_before,
                        files_after=result.files_after,
                        rows=result.rows,
                    )
            expired = expire_old_snapshots(table, settings.max_snapshots, settings.max_snapshot_age_hours)
            if expired:
                events.emit("snapshots_expired", table=name, count=expired)
        except Exception as exc:  # maintenance only: the load already holds
            events.emit("maintenance_failed", table=name, branch=branch, error=events.redact(str(exc)))
