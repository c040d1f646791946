"""The run ledger: one row per target run in `_dativo.ingestion_runs`, and its schema versions.

Snapshot summaries record only commits that landed; a run that failed, or was stopped, left nothing
queryable. `RunLog` collects what the run did as its commits land (streams, tables, the data files
with their MD5s, snapshot ids) and, however the run ends — success, partial, failed, interrupted —
appends one row with its status, exit code, counts, redacted error and last committed STATE, plus
the schema versions the run created, evolved or blocked (`_dativo.schema_history`). The same row
feeds the optional OpenLineage run event (`lineage.py`).

Writing the ledger is best effort: a failure to write it is reported as a `run_ledger_failed` event
and never changes the run's outcome (its exit code and `job_finished` event stay what they were).
The catalog is loaded once, without retries, if the run had not loaded it; a run whose preflight
found the catalog unreachable writes no row, and the write waits at most `WRITE_TIMEOUT_SECONDS`.
"""

from __future__ import annotations

import datetime
import os
import threading
import typing as t
from typing import Any

from pyiceberg.catalog import Catalog

from target_dativo_iceberg.delivery import lineage
from target_dativo_iceberg.iceberg.catalogs import load_catalog_racing
from target_dativo_iceberg.iceberg.retry import RetryPolicy, describe
from target_dativo_iceberg.iceberg.runtables import (
    HISTORY_SCHEMA,
    HISTORY_TABLE,
    RUNS_SCHEMA,
    RUNS_TABLE,
    WrittenFile,
    append_rows,
    history_rows,
    state_text,
)

if t.TYPE_CHECKING:
    from target_dativo_iceberg.events import EventLog
    from target_dativo_iceberg.iceberg.committer import Committer
    from target_dativo_iceberg.services import Landed
    from target_dativo_iceberg.settings import Settings

#: Environment variables naming the tap a run's records come from, first found wins: Meltano sets
#: `MELTANO_EXTRACTOR_NAME` for the loader of `meltano run tap target` (the extractor's plugin info);
#: `DATIVO_SOURCE` names it anywhere else.
SOURCE_VARIABLES = ("DATIVO_SOURCE", "MELTANO_EXTRACTOR_NAME")
#: The ledger write waits at most this long (a catalog that stopped answering does not hold the exit).
WRITE_TIMEOUT_SECONDS = 60
#: A run that failed because the catalog cannot be reached writes no row (it could not).
UNREACHABLE = "preflight catalog check failed"


def run_source() -> str | None:
    """The name of the tap feeding this run, when the environment says it."""
    return next((os.environ[name] for name in SOURCE_VARIABLES if os.environ.get(name)), None)


class RunLog:
    """Facts of one target run, written as one ledger row when the run ends."""

    def __init__(
        self, run_id: str, settings: Settings, events: EventLog, committer: Committer | None
    ) -> None:
        self.run_id = run_id
        self.settings = settings
        self.events = events
        self.committer = committer
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.source = run_source()
        self.tables: dict[str, str] = {}  # stream → table
        self.files: list[WrittenFile] = []
        self.snapshot_ids: list[int] = []
        self.written = False

    def landed(self, landed: Landed) -> None:
        """A commit landed (a `RunProgress` listener)."""
        self.tables[landed.stream] = landed.table
        self.files.extend(landed.result.files)
        self.snapshot_ids.append(landed.result.snapshot_id)

    def row(
        self,
        status: str,
        exit_code: int,
        counts: dict[str, int],
        error: str | None,
        state: Any,
        streams: dict[str, str],
    ) -> dict[str, Any]:
        """The ledger row of this run."""
        finished = datetime.datetime.now(datetime.timezone.utc)
        return {
            "run_id": self.run_id,
            "tenant_id": self.settings.tenant_id,
            "branch": self.settings.branch,
            "source": self.source,
            "streams": sorted({*streams, *self.tables}),
            "tables": sorted({*streams.values(), *self.tables.values()}),
            "started_at": self.started,
            "finished_at": finished,
            "duration_seconds": round((finished - self.started).total_seconds(), 3),
            "status": status,
            "exit_code": exit_code,
            "records_received": counts.get("received", 0),
            "records_committed": counts.get("committed", 0),
            "records_rejected": counts.get("rejected", 0),
            "data_files": len(self.files),
            "bytes_added": sum(f.bytes for f in self.files),
            "files": [f.__dict__ for f in self.files],
            "snapshot_ids": self.snapshot_ids,
            "error": self.events.redact(error) if error else None,
            "state": state_text(state),
        }

    def finish(
        self,
        status: str,
        exit_code: int,
        counts: dict[str, int],
        *,
        error: str | None = None,
        state: Any = None,
        streams: dict[str, str] | None = None,
    ) -> None:
        """Append the run's row (and its schema versions); once per run, never raising. `streams`:
        stream → table of every stream the run received."""
        if self.written:
            return
        self.written = True
        row = self.row(status, exit_code, counts, error, state, streams or {})
        lineage.send(row, self.settings, self.events)
        if not self.settings.run_ledger or self.settings.catalog_type == "none":
            return  # no catalog to hold the ledger table
        if (error or "").startswith(UNREACHABLE):
            return
        outcome: list[Any] = []
        worker = threading.Thread(
            target=lambda: outcome.append(self._write(row)), name="run ledger", daemon=True
        )
        worker.start()
        worker.join(WRITE_TIMEOUT_SECONDS)
        if not outcome:
            outcome.append(TimeoutError(f"no answer from the catalog within {WRITE_TIMEOUT_SECONDS} s"))
        if isinstance(outcome[0], Exception):  # the ledger never changes the run's outcome
            self.events.emit(
                "run_ledger_failed", status=status, error=self.events.redact(describe(outcome[0]))
            )
            return
        self.events.emit("run_recorded", table=".".join(RUNS_TABLE), status=status, snapshot_id=outcome[0])

    def _write(self, row: dict[str, Any]) -> int | Exception:
        """Append the schema versions and the run's row; the ledger snapshot id, or the error."""
        try:
            catalog = self._catalog()
            summary = {"dativo.run-id": self.run_id, "dativo.tenant": self.settings.tenant_id}
            policy = RetryPolicy(max_retries=0, max_conflict_retries=20)
            changes = self.committer.history.changes if self.committer is not None else []
            if changes:
                rows = history_rows(changes, self.run_id, self.settings.tenant_id)
                append_rows(catalog, HISTORY_TABLE, HISTORY_SCHEMA, rows, summary, policy, self.events)
            return append_rows(catalog, RUNS_TABLE, RUNS_SCHEMA, [row], summary, policy, self.events)
        except Exception as exc:
            return exc

    def _catalog(self) -> Catalog:
        committer = self.committer
        if committer is not None and committer.loaded is not None:
            return committer.loaded
        return load_catalog_racing(self.settings)
