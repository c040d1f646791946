"""What a sink needs from its run — its collaborators — so no sink holds the target itself."""

from __future__ import annotations

import datetime
import typing as t
from dataclasses import dataclass, field

if t.TYPE_CHECKING:
    from target_dativo_iceberg.claims import TableClaims
    from target_dativo_iceberg.contracts.contract import Contract
    from target_dativo_iceberg.delivery.commits import CommitQueue
    from target_dativo_iceberg.delivery.ledger import StateLedger
    from target_dativo_iceberg.delivery.shutdown import Shutdown
    from target_dativo_iceberg.events import EventLog
    from target_dativo_iceberg.files.committer import FileCommitter
    from target_dativo_iceberg.iceberg.committer import CommitResult, Committer
    from target_dativo_iceberg.intake.reader import BlockReader
    from target_dativo_iceberg.settings import Settings


@dataclass(frozen=True)
class Landed:
    """One commit of a stream's batch, as the run ledger and the metrics see it."""

    stream: str
    table: str
    result: CommitResult
    rejected: int


@dataclass
class RunProgress:
    """What the run's commits added up to (the exit code and `job_finished` report it); each commit
    is also handed to the `listeners` (run ledger, metrics)."""

    records_committed: int = 0
    records_rejected: int = 0
    quality_failures: int = 0  # warn mode: run-level contract checks that failed (exit 1)
    ending: bool = False  # set at end of input: the next drain of each sink is its final one
    last_sink: t.Any = None  # the sink whose commit landed last (a final STATE commit goes there)
    listeners: list[t.Callable[[Landed], None]] = field(default_factory=list)

    def committed(self, stream: str, table: str, result: CommitResult, rejected: int) -> None:
        """A batch of `stream` landed in `table` (`rejected` of its records went to the rejected table)."""
        self.records_committed += result.records
        self.records_rejected += rejected
        landed = Landed(stream, table, result, rejected)
        for listener in self.listeners:
            listener(landed)

    def quality_failed(self, count: int) -> None:
        self.quality_failures += count


@dataclass(frozen=True)
class RunServices:
    """The run's collaborators a sink uses."""

    run_id: str
    ingest_date: datetime.date
    settings: Settings
    events: EventLog
    contracts: dict[str, Contract]
    committer: Committer | FileCommitter  # Iceberg through a catalog, or Parquet files (catalog_type none)
    ledger: StateLedger
    commits: CommitQueue
    shutdown: Shutdown
    progress: RunProgress
    reader: BlockReader  # the raw line of a record-path RECORD, and line parsing as the SDK does it
    drain: t.Callable[[t.Any], None]  # commit a sink's buffered batch now (the SDK's drain_one)
    claims: TableClaims  # which stream writes which table (two streams never share one)
