"""A no-op singer-sdk target: the ceiling of any target on the SDK's per-record path (issue 7).

Every RECORD goes through the SDK exactly as in a real target (reader, `_process_record_message`,
JSON Schema validation when `validate_records` is on, timestamp parsing, buffering in a `BatchSink`);
`process_batch` then drops the batch. Nothing is written anywhere.

    python bench/noop_target.py --config '{"validate_records": false}' < people.singer.jsonl

(`--config` takes a file path; bench/run writes one.)
"""

from __future__ import annotations

from singer_sdk import typing as th
from singer_sdk.sinks import BatchSink
from singer_sdk.target_base import Target


class NoopSink(BatchSink):
    """Buffers records like any BatchSink, then discards each batch."""

    def process_batch(self, context: dict) -> None:
        """Drop the batch."""


class NoopTarget(Target):
    """Singer target that validates (optionally) and discards everything."""

    name = "target-bench-noop"
    config_jsonschema = th.PropertiesList().to_dict()  # SDK adds validate_records, batch_size_rows, ...
    default_sink_class = NoopSink


if __name__ == "__main__":
    NoopTarget.cli()
