"""How recent each stream's data is: the input to the `lag_seconds` metric (delivery/metering.py).

For each stream, the newest point in time its records are known to come from: the `time_extracted`
of its last RECORD (SDK taps stamp every record with when they read it), else, when its SCHEMA names
one replication key (`bookmark_properties`), that key's value in its last record if it reads as a
timestamp. Only the last record of each run of lines is looked at (a regular expression on one line,
or one Arrow value), so the hot path pays nothing measurable for it.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

import pyarrow as pa

_TIME_EXTRACTED = re.compile(rb'"time_extracted"\s*:\s*"([^"]*)"')


def as_instant(value: Any) -> datetime.datetime | None:
    """`value` as an aware datetime (ISO 8601 text or a datetime; naive means UTC), else None."""
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime.datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=datetime.timezone.utc)


class Freshness:
    """Per stream, when its newest records were extracted (or their replication key's time)."""

    def __init__(self) -> None:
        self.newest: dict[str, datetime.datetime] = {}
        self._keys: dict[str, str] = {}  # stream → its one replication key

    def schema(self, message: dict[str, Any]) -> None:
        """A SCHEMA: remember the stream's replication key (one `bookmark_properties` entry)."""
        keys = message.get("bookmark_properties") or []
        if len(keys) == 1 and isinstance(keys[0], str):
            self._keys[message["stream"]] = keys[0]
        else:
            self._keys.pop(message.get("stream", ""), None)

    def record(self, message: dict[str, Any]) -> None:
        """A RECORD message on the per-record path."""
        stream = message["stream"]
        key = self._keys.get(stream)
        record = message.get("record")
        value = message.get("time_extracted") or (
            record.get(key) if key and isinstance(record, dict) else None
        )
        self._note(stream, value)

    def rows(self, stream: str, lines: pa.Array, records: pa.Table) -> None:
        """A hot run of `stream`'s RECORD lines (raw) and their parsed record columns."""
        last = lines[len(lines) - 1].as_py()
        found = _TIME_EXTRACTED.search(last if isinstance(last, bytes) else last.encode())
        if found:
            self._note(stream, found.group(1).decode())
            return
        key = self._keys.get(stream)
        if key and key in records.column_names and records.num_rows:
            self._note(stream, records.column(key)[records.num_rows - 1].as_py())

    def _note(self, stream: str, value: Any) -> None:
        instant = as_instant(value)
        if instant is not None:
            self.newest[stream] = instant
