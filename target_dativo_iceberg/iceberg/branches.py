"""Branch inspection and publish (write-audit-publish): what a branch holds that main does not.

Publishing fast-forwards main to the branch head, only when main's head is an ancestor of the
branch head; otherwise main has moved on independently and a fast-forward would drop its commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from target_dativo_iceberg.errors import PublishError
from target_dativo_iceberg.iceberg.lineage import lineage

MAIN = "main"
#: Snapshot summary key and value of a compaction commit (`compaction.py`).
OPERATION_KEY, COMPACTION = "dativo.operation", "compaction"


@dataclass
class BranchDiff:
    """Snapshots on `branch` that main does not contain, oldest first."""

    table: str
    branch: str
    branch_snapshot_id: int | None
    main_snapshot_id: int | None
    snapshots: list[Snapshot] = field(default_factory=list)
    fast_forward: bool = False

    @property
    def records_added(self) -> int:
        """Records the branch adds over main: the `added-records` of its own retained snapshots
        (compactions rewrite rows, they add none)."""
        total = 0
        for snap in self.snapshots:
            props = snap.summary.additional_properties if snap.summary else {}
            if props.get(OPERATION_KEY) != COMPACTION:
                total += int(props.get("added-records", 0))
        return total


def _ancestor_ids(table: Table, snapshot: Snapshot | None) -> list[int]:
    return [s.snapshot_id for s in lineage(table.metadata, snapshot)]


def diff(table: Table, branch: str) -> BranchDiff:
    """Compare `branch` with main."""
    head = table.snapshot_by_name(branch)
    main = table.snapshot_by_name(MAIN)
    result = BranchDiff(
        table=".".join(table.name()[-2:]) if len(table.name()) > 1 else table.name()[0],
        branch=branch,
        branch_snapshot_id=head.snapshot_id if head else None,
        main_snapshot_id=main.snapshot_id if main else None,
    )
    if head is None:
        return result
    main_ancestry = set(_ancestor_ids(table, main))
    own = [s for s in lineage(table.metadata, head) if s.snapshot_id not in main_ancestry]
    result.snapshots = list(reversed(own))
    result.fast_forward = main is None or main.snapshot_id in _ancestor_ids(table, head)
    return result


def branches(table: Table) -> list[str]:
    """Branch names of the table (main first)."""
    names = [name for name, ref in table.metadata.refs.items() if ref.snapshot_ref_type.value == "branch"]
    return sorted(names, key=lambda n: (n != MAIN, n))


def publish(table: Table, branch: str) -> BranchDiff:
    """Fast-forward main to `branch`'s head; raise PublishError (main untouched) when it cannot."""
    if branch == MAIN:
        raise PublishError("cannot publish main onto itself; name the branch to publish")
    table.refresh()
    change = diff(table, branch)
    if change.branch_snapshot_id is None:
        raise PublishError(f"table {change.table} has no branch {branch!r}")
    if not change.fast_forward:
        raise PublishError(
            f"table {change.table}: main (snapshot {change.main_snapshot_id}) is not an ancestor of branch "
            f"{branch!r} (snapshot {change.branch_snapshot_id}); main has commits the branch lacks, so a "
            "fast-forward would drop them. main was left untouched"
        )
    if change.snapshots:
        # set_current_snapshot asserts main's current id: a concurrent commit to main fails this publish.
        table.manage_snapshots().set_current_snapshot(ref_name=branch).commit()
    return change


def publish_tables(tables: list[Table], branch: str) -> list[BranchDiff]:
    """Publish `branch` of every table that has it, checking all first: a table whose main moved on
    stops the publish before any table's main moves (PublishError, every main untouched)."""
    with_branch = [t for t in tables if t.snapshot_by_name(branch) is not None]
    if not with_branch:
        raise PublishError(f"no table has a branch {branch!r}")
    blocked = [d for d in (diff(t, branch) for t in with_branch) if not d.fast_forward]
    if blocked:
        raise PublishError(
            "; ".join(
                f"table {d.table}: main (snapshot {d.main_snapshot_id}) is not an ancestor of branch "
                f"{branch!r} (snapshot {d.branch_snapshot_id})"
                for d in blocked
            )
            + ". Nothing was published; main is untouched"
        )
    return [publish(table, branch) for table in with_branch]
