"""Snapshot expiry on every branch: keep table metadata small so commit latency stays flat.

pyiceberg rewrites the whole metadata file on every commit; with hundreds of snapshots a commit
slows down (measured on an unpublished branch without expiry: 72 → 405 ms over 300 commits). Every
branch — main and each tenant branch, published or not — keeps the newest `max_snapshots` snapshots
of its history that are younger than `max_snapshot_age_hours`; older ones are expired, except:

- every branch and tag head (pyiceberg protects those);
- each branch's fork point: the newest snapshot of its history that is also on main's, so
  `dativo branch diff/publish` can still prove that main's head is an ancestor of the branch;
- the newest snapshot of each stream on each branch carrying commit markers (`dativo.singer-state`,
  `dativo.replay`), for `dativo state show` and crash replay detection.

A kept snapshot whose parent is expired gets a recorded link to its nearest kept ancestor
(`lineage.py`), so a branch's history still reaches its fork point. The files only the expired
snapshots referenced (manifest lists, manifests, data and delete files) are deleted once the expiry
has committed (`cleanup.py`): pyiceberg's own expiry deletes no files.
"""

from __future__ import annotations

import time
import typing as t
from dataclasses import dataclass, field

from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.update.snapshot import ExpireSnapshots

from target_dativo_iceberg.iceberg.cleanup import delete_files, referenced_files
from target_dativo_iceberg.iceberg.conflicts import is_commit_conflict
from target_dativo_iceberg.iceberg.lineage import LINK_PREFIX, lineage, links

if t.TYPE_CHECKING:
    from target_dativo_iceberg.events import EventLog
    from target_dativo_iceberg.settings import Settings

#: After a commit, expire only once this many snapshots are due (not on every commit).
SLACK = 20
#: Plans made again after the catalog refused an expiry because of a concurrent commit.
CONFLICT_ATTEMPTS = 4
HOUR_MS = 3_600_000


@dataclass
class ExpiryPlan:
    """Snapshots to expire and the ancestor links that keep the kept histories connected."""

    expire: list[int] = field(default_factory=list)
    set_links: dict[str, str] = field(default_factory=dict)
    drop_links: list[str] = field(default_factory=list)


def _protected(meta: TableMetadata, max_snapshots: int, max_age_ms: int, now_ms: int) -> set[int]:
    keep: set[int] = {ref.snapshot_id for ref in meta.refs.values()}
    main = meta.snapshot_by_name("main")
    main_line = {s.snapshot_id for s in lineage(meta, main)}
    for name, ref in meta.refs.items():
        if ref.snapshot_ref_type.value != "branch":
            continue
        streams: set[str] = set()
        forked = name == "main"
        for position, snap in enumerate(lineage(meta, meta.snapshot_by_id(ref.snapshot_id))):
            young = max_age_ms <= 0 or now_ms - snap.timestamp_ms <= max_age_ms
            if position < max_snapshots and young:
                keep.add(snap.snapshot_id)
            if not forked and snap.snapshot_id in main_line:
                keep.add(snap.snapshot_id)
                forked = True
            props = snap.summary.additional_properties if snap.summary else {}
            stream = props.get("dativo.stream")
            if stream and "dativo.singer-state" in props and stream not in streams:
                streams.add(stream)
                keep.add(snap.snapshot_id)
    return keep


def plan_expiry(
    meta: TableMetadata,
    max_snapshots: int,
    max_age_hours: float = 0,
    now_ms: int | None = None,
    min_expire: int = 1,
) -> ExpiryPlan:
    """What expiry would remove from `meta`: nothing when `max_snapshots` is 0 or fewer than
    `min_expire` snapshots are due (then the links are not worked out either)."""
    if max_snapshots <= 0:
        return ExpiryPlan()
    now_ms = now_ms if now_ms is not None else int(time.time() * 1000)
    keep = _protected(meta, max_snapshots, int(max_age_hours * HOUR_MS), now_ms)
    plan = ExpiryPlan(expire=[s.snapshot_id for s in meta.snapshots if s.snapshot_id not in keep])
    if len(plan.expire) < max(1, min_expire):
        return ExpiryPlan()
    old_links = links(meta)
    for snap in meta.snapshots:
        if snap.snapshot_id not in keep:
            continue
        walk = lineage(meta, snap)
        next(walk)  # the snapshot itself
        first = next(walk, None)
        if first is None or first.snapshot_id in keep:
            continue  # its next ancestor stays: nothing to bridge
        nearest = next((s.snapshot_id for s in walk if s.snapshot_id in keep), None)
        if nearest is not None and old_links.get(snap.snapshot_id) != nearest:
            plan.set_links[f"{LINK_PREFIX}{snap.snapshot_id}"] = str(nearest)
    plan.drop_links = [f"{LINK_PREFIX}{sid}" for sid in old_links if sid not in keep]
    return plan


def apply_expiry(table: Table, plan: ExpiryPlan) -> int:
    """Commit `plan` (links and expiry in one transaction), then delete the files only the expired
    snapshots referenced. Returns the number of files deleted."""
    if not plan.expire:
        return 0
    expired = set(plan.expire)
    before = referenced_files(table, [s for s in table.metadata.snapshots if s.snapshot_id in expired])
    with table.transaction() as tx:
        if plan.set_links:
            tx.set_properties(plan.set_links)
        if plan.drop_links:
            tx.remove_properties(*plan.drop_links)
        ExpireSnapshots(tx).by_ids(plan.expire).commit()
    table.refresh()
    still = referenced_files(table, table.metadata.snapshots)
    return delete_files(table, sorted(before - still))


def expire_old_snapshots(
    table: Table, max_snapshots: int, max_age_hours: float = 0, slack: int = SLACK
) -> int:
    """Expire what `plan_expiry` allows once at least `slack` snapshots are due; the count expired.

    A concurrent commit that makes the catalog refuse the expiry, or a concurrent expiry, is met by
    planning again on the new metadata (a few times; then the error is raised)."""
    for attempt in range(CONFLICT_ATTEMPTS):
        if attempt:
            table.refresh()
        plan = plan_expiry(table.metadata, max_snapshots, max_age_hours, min_expire=slack)
        if not plan.expire:
            return 0
        try:
            apply_expiry(table, plan)
            return len(plan.expire)
        except Exception as exc:
            raced = is_commit_conflict(exc) or _raced(exc) or _expired_meanwhile(table, plan, exc)
            if not raced or attempt == CONFLICT_ATTEMPTS - 1:
                raise
    return 0


def _expired_meanwhile(table: Table, plan: ExpiryPlan, exc: BaseException) -> bool:
    """A file of a snapshot the plan expires was missing because a concurrent expiry had already
    removed that snapshot and its files: planned again. A file missing otherwise is an error."""
    if not isinstance(exc, FileNotFoundError):
        return False
    table.refresh()
    present = {s.snapshot_id for s in table.metadata.snapshots}
    return any(sid not in present for sid in plan.expire)


def _raced(exc: BaseException) -> bool:
    """pyiceberg re-applied the expiry on metadata a concurrent expiry had already changed: a link
    property or a snapshot it removes is gone (KeyError / "does not exist"). Planned again."""
    return isinstance(exc, KeyError) or (isinstance(exc, ValueError) and "does not exist" in str(exc))


def expire_reporting(table: Table, settings: Settings, events: EventLog, stream: str) -> None:
    """Expire after a commit (once its STATE is out); a failed expiry is reported
    (`maintenance_failed`), not raised: the commit before it already holds."""
    try:
        expired = expire_old_snapshots(table, settings.max_snapshots, settings.max_snapshot_age_hours)
    except Exception as exc:  # maintenance only
        events.emit("maintenance_failed", stream=stream, action="expire", error=events.redact(str(exc)))
        return
    if expired:
        events.emit("snapshots_expired", stream=stream, count=expired)
