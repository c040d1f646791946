"""`add_record_metadata` on the columnar path: the SDK's `_sdc_*` columns built as Arrow columns.

singer-sdk adds them to each record before validation (`Sink._add_sdc_metadata_to_record`):
extracted-at from the RECORD message's `time_extracted`, received-at and the sequence (epoch
milliseconds) when the record arrives, batched-at from the batch's start, the deleted-at the
record carries, the table version from the message's `version`, and the sink's sync start. Here a
run of RECORD lines gets them as whole columns when it joins the buffer: the message fields come
from the reader's parse (`MESSAGE_COLUMNS`), the times are those of the run's arrival.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

import pyarrow as pa

#: RECORD message fields the reader parses next to the record → the metadata column they fill.
MESSAGE_COLUMNS = {"time_extracted": "_sdc_extracted_at", "version": "_sdc_table_version"}
MESSAGE_TYPES = {"time_extracted": pa.string(), "version": pa.int64()}


def with_message_fields(records: pa.Table, message: pa.Table) -> pa.Table:
    """The record columns plus the message fields as their metadata columns (replacing record keys
    of those names, as the SDK does)."""
    for field, column in MESSAGE_COLUMNS.items():
        values = message.column(field) if field in message.column_names else None
        if values is None:
            values = pa.nulls(records.num_rows, MESSAGE_TYPES[field])
        if column in records.column_names:
            records = records.drop_columns([column])
        records = records.append_column(column, values)
    return records


def add_sdk_metadata(records: pa.Table, batch_start: Any, sync_started_at: Any) -> pa.Table:
    """The `_sdc_*` columns of a run arriving now (the message columns are already there)."""
    n = records.num_rows
    now = datetime.datetime.now(tz=datetime.timezone.utc)
    started = batch_start or now
    columns: dict[str, pa.Array] = {
        "_sdc_received_at": pa.array([now.isoformat()] * n, pa.string()),
        "_sdc_batched_at": pa.array([started.isoformat()] * n, pa.string()),
        "_sdc_sequence": pa.array([round(time.time() * 1000)] * n, pa.int64()),
        "_sdc_sync_started_at": pa.array([sync_started_at] * n, pa.int64()),
    }
    if "_sdc_deleted_at" not in records.column_names:
        columns["_sdc_deleted_at"] = pa.nulls(n, pa.string())
    for name in MESSAGE_COLUMNS.values():
        if name not in records.column_names:
            columns[name] = pa.nulls(n, pa.string() if name == "_sdc_extracted_at" else pa.int64())
    for name, values in columns.items():
        if name in records.column_names:
            records = records.drop_columns([name])
        records = records.append_column(name, values)
    return records
