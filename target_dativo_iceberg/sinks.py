"""Per-stream behaviour: buffer a stream's records and commit them to its Iceberg table.

A RECORD's path: Target._process_record_message → IcebergSink.process_record (buffered) →
IcebergSink.process_batch → Committer.commit_records (Arrow conversion + Iceberg transaction) →
Target.on_commit (emit the STATE this commit made safe).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from singer_sdk.sinks import BatchSink

from target_dativo_iceberg.committer import json_state
from target_dativo_iceberg.schema import StreamSchema, sanitize_name, singer_to_iceberg

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from target_dativo_iceberg.target import TargetDativoIceberg


class IcebergSink(BatchSink):
    """Buffers one stream's records and appends each batch to its table on the branch."""

    MAX_SIZE_DEFAULT = 100_000

    def __init__(
        self, target: TargetDativoIceberg, stream_name: str, schema: dict, key_properties: Any
    ) -> None:
        super().__init__(target, stream_name, schema, key_properties)
        self.dativo = target
        self.stream_schema: StreamSchema = singer_to_iceberg(stream_name, self.schema, self.key_properties)
        self.identifier = (target.settings.default_namespace, sanitize_name(stream_name))
        self._table: Table | None = None
        #: Number of STATE messages seen when the first record still buffered arrived (None: empty).
        self.first_pending_seq: int | None = None
        self._position = 0  # records of this stream seen so far, for error messages
        target.events.emit(
            "writer_initialized",
            stream=stream_name,
            table=".".join(self.identifier),
            columns=[f.name for f in self.stream_schema.iceberg.fields],
        )

    @property
    def table(self) -> Table:
        """The stream's table, created on first use and cached for the run."""
        if self._table is None:
            self._table = self.dativo.committer.ensure_table(
                self.stream_name, self.identifier, self.stream_schema.iceberg
            )
        return self._table

    def process_record(self, record: dict, context: dict) -> None:
        """Buffer the record; remember which STATE it follows so covered state can be computed."""
        if self.first_pending_seq is None:
            self.first_pending_seq = self.dativo.state_seq
        context.setdefault("records", []).append(record)

    def process_batch(self, context: dict) -> None:
        """Commit the buffered records in one Iceberg transaction, then let the target emit STATE."""
        records: list[dict[str, Any]] = context.get("records", [])
        if not records:
            return
        first_position = self._position + 1
        self._position += len(records)
        started = time.monotonic()
        covered_seq, covered_state = self.dativo.covered_state(self)
        summary = {
            "dativo.run-id": self.dativo.run_id,
            "dativo.tenant": self.dativo.settings.tenant_id,
            "dativo.stream": self.stream_name,
            "dativo.records-rejected": "0",
            "dativo.singer-state": json_state(covered_state),
        }
        table = self.table
        result = self.dativo.committer.commit_records(
            self.stream_name, table, self.stream_schema, records, summary, first_position
        )
        self.dativo.events.emit(
            "batch_written",
            stream=self.stream_name,
            table=".".join(self.identifier),
            records=len(records),
        )
        self.dativo.events.emit(
            "commit_success",
            stream=self.stream_name,
            table=".".join(self.identifier),
            branch=result.branch,
            snapshot_id=result.snapshot_id,
            commit_id=result.commit_id,
            records=result.records,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        self.tally_record_written(len(records))
        self.first_pending_seq = None
        self.dativo.on_commit(covered_seq)
