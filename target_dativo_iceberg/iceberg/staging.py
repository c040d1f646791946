"""Branch refs a run needs: the tenant branch cut from main on first write, and an overwrite's
staging branch with its atomic swap (one catalog commit guarded by both refs' heads)."""

from __future__ import annotations

from pyiceberg.table import Table

from target_dativo_iceberg.errors import CommitError
from target_dativo_iceberg.iceberg.branches import MAIN
from target_dativo_iceberg.iceberg.conflicts import is_commit_conflict


def ensure_branch(table: Table, branch: str) -> None:
    """Create `branch` from main's head when it does not exist yet (never an orphan branch)."""
    if branch == MAIN or table.metadata.refs.get(branch) is not None:
        return
    head = table.metadata.current_snapshot_id
    if head is None:
        raise CommitError(f"table {table.name()} has no snapshot on main to branch {branch!r} from")
    try:
        table.manage_snapshots().create_branch(snapshot_id=head, branch_name=branch).commit()
    except Exception as exc:  # a concurrent writer created the branch first: fine
        if not is_commit_conflict(exc):
            raise
        table.refresh()
        if table.metadata.refs.get(branch) is None:
            raise


def create_branch_from(table: Table, name: str, source: str) -> int:
    """Create branch `name` at `source`'s head (for overwrite staging); returns that head id."""
    table.refresh()
    ensure_branch(table, source)
    head = table.snapshot_by_name(source)
    assert head is not None
    if table.metadata.refs.get(name) is not None:
        table.manage_snapshots().remove_branch(name).commit()
    table.manage_snapshots().create_branch(snapshot_id=head.snapshot_id, branch_name=name).commit()
    return head.snapshot_id


def replace_branch(table: Table, branch: str, staging: str, expected_head: int) -> int:
    """Point `branch` at `staging`'s head and drop `staging`, atomically.

    Fails (nothing changed) when `branch` moved since the staging branch was cut from it: another
    writer's commits would otherwise vanish.
    """
    table.refresh()
    head = table.snapshot_by_name(branch)
    staged = table.snapshot_by_name(staging)
    if staged is None:
        raise CommitError(f"overwrite of {table.name()}: staging branch {staging!r} is missing")
    if head is None or head.snapshot_id != expected_head:
        raise CommitError(
            f"overwrite of {table.name()}: branch {branch!r} moved during the run "
            f"({expected_head} → {head.snapshot_id if head else None}); the new content stays on {staging!r}"
        )
    # One catalog commit, guarded by both refs' current heads.
    manage = table.manage_snapshots().create_branch(snapshot_id=staged.snapshot_id, branch_name=branch)
    manage.remove_branch(staging).commit()
    return staged.snapshot_id
