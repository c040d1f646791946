"""Every private singer-sdk API the target and the tap rely on, in one place, so an upgrade touches one file.

singer-sdk exposes its BATCH configuration types only from a private module, so both plugins import
them from here. Checked against singer-sdk 0.54.9; the dependency is pinned to `>=0.54.9,<0.55` in
pyproject.toml — on an upgrade, re-check each below:

- `singer_sdk.helpers._batch.BatchConfig` and `.BatchFileFormat`: the `batch_config` setting parsed
  (encoding, storage root, prefix) and its file formats, for BATCH files written by the tap and read
  by the target.
- `SDK_METADATA_COLUMNS`: the record metadata columns singer-sdk's `Sink` adds with
  `add_record_metadata` (`Sink._add_sdc_metadata_to_record`) and removes without it
  (`Sink._remove_sdc_metadata_from_record`); the SDK has no public list of them.
"""

from __future__ import annotations

from singer_sdk.helpers._batch import BatchConfig, BatchFileFormat

__all__ = ["SDK_METADATA_COLUMNS", "BatchConfig", "BatchFileFormat"]

#: Record keys singer-sdk's sinks add (`add_record_metadata`) and otherwise drop: never unknown fields.
SDK_METADATA_COLUMNS = (
    "_sdc_extracted_at",
    "_sdc_received_at",
    "_sdc_batched_at",
    "_sdc_deleted_at",
    "_sdc_sequence",
    "_sdc_table_version",
    "_sdc_sync_started_at",
)
