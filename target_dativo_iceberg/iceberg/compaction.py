"""Compaction: bin-pack a branch's small data files, per partition, into files near the target size.

Every commit closes its files, so a stream committed every few seconds leaves thousands of small
files that every reader has to open (measured: 4 commits of 25k rows made 4 files of ~0.5 MB against
a 150 MB target). pyiceberg 0.12 has no rewrite action, so it is done here:

- files smaller than `SMALL_FRACTION` of `parquet_target_size_mb` (or with delete files against
  them) are grouped by partition and packed into bins of about the target size;
- each bin is read through pyiceberg's scan — position and equality delete files are applied —
  and written again by `writer.RollingWriter`, so the new files carry no deletes;
- all bins of a table and branch land in one overwrite commit: the old files out, the new ones in,
  and the position delete files that named rows of the old files only (as the target writes them)
  out too, so upserts do not leave delete files behind. Readers see the same rows before and after.

The compaction snapshot carries `dativo.operation=compaction` and no Singer state or replay marker:
those stay on the commit snapshots below it (kept by expiry), where `dativo state show` and replay
detection find them by walking the branch. Nothing copied can then go stale when pyiceberg re-applies
the commit on a head a concurrent writer moved. A conflict pyiceberg cannot resolve (a writer deleted
rows from a file being compacted) fails the commit; `compact()` then plans again on the new head, a
few times, and otherwise reports the table skipped (`maintenance_skipped`).
"""

from __future__ import annotations

import contextlib
import typing as t
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pyarrow as pa
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.manifest import DataFile, DataFileContent
from pyiceberg.table import FileScanTask, Table
from pyiceberg.table.snapshots import Snapshot

from target_dativo_iceberg.iceberg.branches import COMPACTION, OPERATION_KEY
from target_dativo_iceberg.iceberg.conflicts import is_commit_conflict
from target_dativo_iceberg.iceberg.keydeletes import DELETE_FILE_SUFFIX, PATH_ID
from target_dativo_iceberg.iceberg.pyiceberg_compat import DeleteDroppingOverwrite
from target_dativo_iceberg.iceberg.writer import RollingWriter

if t.TYPE_CHECKING:
    from target_dativo_iceberg.events import EventLog

#: A file below this fraction of the target size is small (Iceberg's rewrite uses 0.75 too).
SMALL_FRACTION = 0.75
#: Plans made again after a conflict before the table is skipped.
CONFLICT_ATTEMPTS = 4


@dataclass
class Bin:
    """Data files of one partition rewritten into new files together."""

    partition: str
    tasks: list[FileScanTask] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        """Bytes of the input files."""
        return sum(task.file.file_size_in_bytes for task in self.tasks)

    @property
    def deletes(self) -> int:
        """Delete files applied while rewriting."""
        return len({d.file_path for task in self.tasks for d in task.delete_files})


@dataclass
class CompactionPlan:
    """What compacting one branch of a table rewrites."""

    table: str
    branch: str
    snapshot_id: int | None
    bins: list[Bin] = field(default_factory=list)
    live: set[str] = field(default_factory=set)  # every data file of the head

    @property
    def files(self) -> int:
        """Data files rewritten."""
        return sum(len(b.tasks) for b in self.bins)


@dataclass
class CompactionResult:
    """What one compaction committed."""

    files_before: int
    files_after: int
    rows: int
    snapshot_id: int | None


def _partition_label(table: Table, data_file: DataFile) -> str:
    spec = table.metadata.specs()[data_file.spec_id]
    if spec.is_unpartitioned():
        return ""
    return spec.partition_to_path(data_file.partition, table.schema())


def plan_compaction(
    table: Table,
    branch: str,
    target_bytes: int,
    *,
    min_files: int = 2,
    partitions: Iterable[str] | None = None,
) -> CompactionPlan:
    """Bins of small files (and files with deletes) per partition of `branch`'s head.

    `min_files`: a partition is compacted only when it has at least this many candidate files (or a
    file with deletes). `partitions`: only these partition paths (e.g. the ones a run touched)."""
    head = table.snapshot_by_name(branch)
    name = ".".join(table.name()[-2:])
    plan = CompactionPlan(name, branch, head.snapshot_id if head else None)
    if head is None or _too_few_files(head, min_files):
        return plan
    wanted = set(partitions) if partitions is not None else None
    default_spec = table.metadata.default_spec_id
    groups: dict[str, list[FileScanTask]] = defaultdict(list)
    for task in table.scan(snapshot_id=head.snapshot_id).plan_files():
        data_file = task.file
        plan.live.add(data_file.file_path)
        if data_file.spec_id != default_spec:
            continue  # written under an older partition spec: left as it is
        small = data_file.file_size_in_bytes < SMALL_FRACTION * target_bytes
        if not small and not task.delete_files:
            continue
        label = _partition_label(table, data_file)
        if wanted is None or label in wanted:
            groups[label].append(task)
    for label, tasks in sorted(groups.items()):
        has_deletes = any(task.delete_files for task in tasks)
        if len(tasks) < max(2, min_files) and not has_deletes:
            continue
        current = Bin(label)
        for task in sorted(tasks, key=lambda x: x.file.file_size_in_bytes, reverse=True):
            if current.tasks and current.bytes + task.file.file_size_in_bytes > target_bytes:
                plan.bins.append(current)
                current = Bin(label)
            current.tasks.append(task)
        plan.bins.append(current)
    plan.bins = [b for b in plan.bins if len(b.tasks) > 1 or b.deletes]
    return plan


def _too_few_files(head: Snapshot, min_files: int) -> bool:
    """Whether the head's summary counts no delete file and fewer data files than a bin needs:
    nothing could be planned, and planning reads every manifest (~70 ms at the end of a run of ten
    commits). False when the summary has no totals."""
    props = head.summary.additional_properties if head.summary else {}
    try:
        return int(props["total-delete-files"]) == 0 and int(props["total-data-files"]) < max(2, min_files)
    except (KeyError, ValueError):
        return False


def _rewrite(table: Table, plan: CompactionPlan, target_bytes: int) -> CompactionResult:
    """Write every bin's rows to new files and commit them in place of the old ones."""
    meta = table.metadata
    scan = ArrowScan(meta, table.io, meta.schema(), AlwaysTrue())
    new_files: list[DataFile] = []
    committing = False
    try:
        # One writer for every bin: it keeps one open file per partition, so a partition's rows
        # fill files of the target size and only its last file is smaller.
        writer = RollingWriter(meta, table.io, target_bytes)
        for part in plan.bins:
            for task in part.tasks:  # one file at a time: pyiceberg reads the tasks of one call
                # concurrently, each whole (12 files of a 2.1M-row table took ~700 MB at once)
                for batch in scan.to_record_batches([task]):
                    writer.write(pa.Table.from_batches([batch]))
        rows = writer.rows
        new_files.extend(writer.finish())
        committing = True
        props = {OPERATION_KEY: COMPACTION, "dativo.rewritten-files": str(plan.files)}
        with (
            table.transaction() as tx,
            DeleteDroppingOverwrite(tx, props, plan.branch, _obsolete_delete(plan)) as rewrite,
        ):
            for part in plan.bins:
                for task in part.tasks:
                    rewrite.delete_data_file(task.file)
            for data_file in new_files:
                rewrite.append_data_file(data_file)
    except BaseException as exc:
        if committing and not (is_commit_conflict(exc) or isinstance(exc, FileNotFoundError)):
            raise  # the commit may have landed (a lost response): its files stay
        for data_file in new_files:  # never committed: not left behind as orphans
            with contextlib.suppress(Exception):
                table.io.delete(data_file.file_path)
        raise
    table.refresh()
    head = table.snapshot_by_name(plan.branch)
    return CompactionResult(plan.files, len(new_files), rows, head.snapshot_id if head else None)


def _obsolete_delete(plan: CompactionPlan) -> Callable[[DataFile], bool]:
    """Whether a delete file is obsolete after the rewrite: a position delete file that names rows
    of one data file only (its `file_path` bounds are equal, as the target writes them), and that
    file is rewritten here with the deletes applied, or, for a delete file the target wrote, was
    already gone (a copy-on-write delete rewrote it). Delete files of several data files, and
    equality deletes, stay."""
    rewritten = {task.file.file_path for part in plan.bins for task in part.tasks}

    def obsolete(delete_file: DataFile) -> bool:
        low = (delete_file.lower_bounds or {}).get(PATH_ID)
        high = (delete_file.upper_bounds or {}).get(PATH_ID)
        if delete_file.content != DataFileContent.POSITION_DELETES or low is None or low != high:
            return False
        named = bytes(low).decode("utf-8", "replace")
        ours = delete_file.file_path.endswith(DELETE_FILE_SUFFIX)  # full bounds, not truncated ones
        return named in rewritten or (ours and named not in plan.live)

    return obsolete


def _lost_race(exc: BaseException, table: Table | None = None, plan: CompactionPlan | None = None) -> bool:
    """A concurrent writer won: a commit conflict, or a file gone because the branch moved on since
    the plan (a writer's snapshot expiry removed the old head's manifest list, which pyiceberg
    reads while building the commit, before anything reaches the catalog). A file missing under an
    unmoved head is a real failure."""
    if is_commit_conflict(exc):
        return True
    if not isinstance(exc, FileNotFoundError) or table is None or plan is None:
        return False
    table.refresh()
    head = table.snapshot_by_name(plan.branch)
    return (head.snapshot_id if head else None) != plan.snapshot_id


def compact(
    table: Table,
    branch: str,
    target_bytes: int,
    events: EventLog,
    *,
    min_files: int = 2,
    partitions: Iterable[str] | None = None,
) -> CompactionResult | None:
    """Compact `branch` of `table`; None when there was nothing to do or conflicts outlasted the
    attempts (then a `maintenance_skipped` event says so)."""
    wanted = list(partitions) if partitions is not None else None
    last: Exception | None = None
    for _ in range(CONFLICT_ATTEMPTS):
        table.refresh()
        plan = plan_compaction(table, branch, target_bytes, min_files=min_files, partitions=wanted)
        if not plan.bins:
            return None
        try:
            return _rewrite(table, plan, target_bytes)
        except Exception as exc:
            if not _lost_race(exc, table, plan):
                raise
            last = exc
    events.emit(
        "maintenance_skipped",
        table=".".join(table.name()[-2:]),
        branch=branch,
        action="compact",
        reason=events.redact(f"concurrent writers kept conflicting: {last}"),
    )
    return None
