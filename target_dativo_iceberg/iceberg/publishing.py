"""`auto_publish`: write-audit-publish in one setting — after an audited run, main moves to the branch.

A run writes on its branch (write); its contract checks are the audit; when the run ends with exit 0
and nothing was rejected and no quality check failed, main of every table the run wrote is
fast-forwarded to the branch (publish, `branches.publish_tables`: all tables checked before any
moves). Otherwise every main stays where it was and a `publish_skipped` event says why.
"""

from __future__ import annotations

from pyiceberg.table import Table

from target_dativo_iceberg.events import EventLog
from target_dativo_iceberg.iceberg.branches import MAIN, publish_tables
from target_dativo_iceberg.settings import Settings


def skip_publish(settings: Settings, events: EventLog, reason: str) -> None:
    """With `auto_publish` on: log that main stays untouched, and why."""
    if settings.auto_publish:
        events.emit("publish_skipped", branch=settings.table_branch, reason=reason)


def auto_publish(tables: list[Table], settings: Settings, events: EventLog, audited: bool) -> None:
    """Publish the run's branch of `tables` (the tables the run wrote) when `auto_publish` is on and
    the run passed its audit; a table whose main moved on raises PublishError (nothing published)."""
    if not settings.auto_publish:
        return
    branch = settings.table_branch
    if not audited:
        skip_publish(
            settings,
            events,
            "records were rejected or a contract quality check failed: review the branch, then "
            "`dativo branch publish`",
        )
        return
    if branch == MAIN:
        skip_publish(settings, events, "the run wrote main itself")
        return
    if not tables:
        skip_publish(settings, events, "the run wrote no table")
        return
    for table in tables:
        table.refresh()
    for change in publish_tables(tables, branch):  # PublishError: the run fails, every main untouched
        events.emit(
            "published",
            table=change.table,
            branch=branch,
            snapshot_id=change.branch_snapshot_id,
            records_added=change.records_added,
        )
